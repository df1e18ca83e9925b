"""The package's own promises: one transaction per operation, the
embedder's directory, mailer and clock, and refusals as one exception."""

import email
import sqlite3
from pathlib import Path

import pytest

from conftest import SECRET
from reclaim import (
    ManualClock, Message, Reclaim, RecoveryError, Settings, SqliteDirectory, component_path,
)

SETTINGS = Settings("https://id.example.test", [SECRET])


def token_of(link: str) -> str:
    return link.split("token=")[1]


def test_the_packaged_component_is_a_component_not_a_core_module():
    wasm = component_path().read_bytes()
    assert wasm[:8] == b"\x00asm\x0d\x00\x01\x00", "a component, not a core module"


def test_a_link_redeems_once_and_refusals_carry_the_components_fields(reclaim):
    ann = reclaim.directory.create(email="ann@example.com")
    link = reclaim.create_link(ann.id, expires_in="10m")
    assert link.link.startswith("https://id.example.test/self-service/recovery?flow=")
    redemption = reclaim.redeem_link(token_of(link.link))
    assert redemption.identity_id == ann.id
    with pytest.raises(RecoveryError) as refused:
        reclaim.redeem_link(token_of(link.link))
    e = refused.value
    assert (e.kind, e.code, e.status) == ("credential-used", 410, "Gone")
    assert e.reason and e.message == str(e)


def test_bad_input_is_refused_with_its_kind(reclaim):
    ann = reclaim.directory.create(email="ann@example.com")
    for expires_in in ["", "10", "1d", "-1s", "0s", "25h"]:
        with pytest.raises(RecoveryError) as refused:
            reclaim.create_link(ann.id, expires_in=expires_in)
        assert (refused.value.kind, refused.value.code) == ("invalid-argument", 400), expires_in
    with pytest.raises(RecoveryError) as refused:
        reclaim.create_link("00000000-0000-4000-8000-000000000000")
    assert refused.value.kind == "identity-not-found"


def test_the_host_decides_now(database: Path):
    clock = ManualClock(1_800_000_000)
    with Reclaim(database, SETTINGS, clock=clock) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com")
        link = reclaim.create_link(ann.id, expires_in="90s")
        assert link.expires_at == (1_800_000_000 + 90) * 1_000_000_000
        clock.advance(90)
        with pytest.raises(RecoveryError) as refused:
            reclaim.redeem_link(token_of(link.link))
        assert refused.value.kind == "credential-expired"


class FailingMailer:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def queue(self, message: Message) -> None:
        raise self.error

    def deliver(self) -> None:
        pass


def test_a_trap_rolls_the_whole_operation_back(database: Path):
    with Reclaim(database, SETTINGS, mailer=FailingMailer(RuntimeError("the relay is on fire"))) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com")
        with pytest.raises(Exception, match="on fire"):
            reclaim.send_recovery_email(ann.id)
        stored = reclaim.connection.execute("SELECT count(*) FROM credentials").fetchone()[0]
        assert stored == 0, "no token without its mail"


def test_a_refused_message_keeps_no_token(database: Path):
    with Reclaim(database, SETTINGS, mailer=FailingMailer(ValueError("no such mailbox"))) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com")
        with pytest.raises(RecoveryError) as refused:
            reclaim.send_recovery_email(ann.id)
        assert refused.value.kind == "mail-rejected"
        assert reclaim.connection.execute("SELECT count(*) FROM credentials").fetchone()[0] == 0


def test_mail_is_written_as_eml_after_the_commit(database: Path, tmp_path: Path):
    outbox = tmp_path / "outbox"
    with Reclaim(database, SETTINGS, eml_dir=outbox) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com", display_name="Ann")
        reclaim.send_recovery_email(ann.pk)
        (eml,) = outbox.glob("*.eml")
        mail = email.message_from_bytes(eml.read_bytes())
        assert mail["To"] == "Ann <ann@example.com>"
        text = mail.get_payload()[0].get_payload(decode=True).decode()
        assert "https://id.example.test/self-service/recovery?flow=" in text
        status = reclaim.connection.execute("SELECT status FROM outbox").fetchone()[0]
        assert status == "sent"


def test_the_directory_can_be_an_existing_users_table(database: Path):
    users = sqlite3.connect(database)
    users.executescript("""
        CREATE TABLE auth_user (id INTEGER PRIMARY KEY, username TEXT, email TEXT, is_active INTEGER);
        INSERT INTO auth_user VALUES (7, 'ann', 'Ann@Example.com', 1), (8, 'bo', 'bo@example.com', 0);
    """)
    users.commit()
    users.close()
    with Reclaim(database, SETTINGS) as reclaim:
        reclaim.directory = SqliteDirectory(
            reclaim.connection,
            "SELECT CAST(id AS TEXT) AS id, id AS pk, email, username AS display_name,"
            " NULL AS locale, is_active AS active FROM auth_user",
        )
        link = reclaim.create_link(7)
        assert reclaim.redeem_link(token_of(link.link)).identity_id == "7"
        reclaim.request_recovery("ann@example.com")
        with pytest.raises(RecoveryError) as refused:
            reclaim.create_link(8)
        assert refused.value.kind == "identity-inactive"


def test_changes_in_the_users_table_end_recovery_at_the_next_redemption(database: Path):
    with Reclaim(database, SETTINGS) as reclaim:
        reclaim.connection.executescript("""
            CREATE TABLE auth_user (id INTEGER PRIMARY KEY, email TEXT, is_active INTEGER);
            INSERT INTO auth_user VALUES (7, 'ann@example.com', 1);
        """)
        reclaim.directory = SqliteDirectory(
            reclaim.connection,
            "SELECT CAST(id AS TEXT) AS id, id AS pk, email, NULL AS display_name,"
            " NULL AS locale, is_active AS active FROM auth_user",
        )
        before = reclaim.create_link(7)
        reclaim.connection.execute("UPDATE auth_user SET email = 'ann@moved.example'")
        with pytest.raises(RecoveryError) as refused:
            reclaim.redeem_link(token_of(before.link))
        assert refused.value.kind == "credential-revoked"
        after = reclaim.create_link(7)
        reclaim.connection.execute("UPDATE auth_user SET is_active = 0")
        with pytest.raises(RecoveryError) as refused:
            reclaim.redeem_link(token_of(after.link))
        assert refused.value.kind == "identity-inactive"


def test_observe_sees_every_phase_of_an_operation(database: Path):
    seen = []
    with Reclaim(database, SETTINGS, observe=lambda phase, s: seen.append((phase, s))) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com")
        reclaim.create_link(ann.id)
    assert [phase for phase, _ in seen] == ["instantiate", "component", "imports", "commit"]
    assert all(seconds >= 0 for _, seconds in seen)


class KeepingMailer:
    def __init__(self) -> None:
        self.kept: list = []

    def queue(self, message: Message) -> None:
        self.kept.append(message)

    def deliver(self) -> None:
        pass


def test_a_mailer_of_yours_gets_only_messages_that_pass_the_providers_checks(database: Path):
    mailer = KeepingMailer()
    with Reclaim(database, SETTINGS, mailer=mailer) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com", display_name="A" * 100)
        reclaim.send_recovery_email(ann.id)
        (message,) = mailer.kept
        assert message.to == "ann@example.com"
        assert len(message.to_name) == 64 and message.to_name.endswith("…"), "fitted to one header line"
        assert reclaim.connection.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0, "yours, not the outbox"
        reclaim.connection.execute("UPDATE identities SET email = 'ann@[127.0.0.1]'")
        with pytest.raises(RecoveryError) as refused:
            reclaim.send_recovery_email(ann.id)
        assert refused.value.kind == "mail-rejected"
        assert len(mailer.kept) == 1


def test_on_postgresql_links_and_mail_keep_to_the_providers_tables(postgres_url: str, tmp_path: Path):
    outbox = tmp_path / "outbox"
    with Reclaim(postgres_url, SETTINGS, eml_dir=outbox) as reclaim:
        ann = reclaim.directory.create(email="Ann@Example.com", display_name="Ann")
        assert reclaim.directory.get_by_pk(ann.pk) == ann
        reclaim.request_recovery("ann@example.com")  # the address in another case
        (eml,) = outbox.glob("*.eml")
        link = reclaim.create_link(ann.id, expires_in="10m")
        assert reclaim.redeem_link(token_of(link.link)).identity_id == ann.id
        with pytest.raises(RecoveryError) as refused:
            reclaim.redeem_link(token_of(link.link))
        assert refused.value.kind == "credential-used"
        rows = reclaim.connection.execute("SELECT status, flow_id IS NOT NULL FROM outbox").fetchall()
        assert rows == [("sent", True)]
        with pytest.raises(RecoveryError):
            reclaim.redeem_code(link.flow_id, "000000")
    # A second process's start finds the tables made and migrates nothing.
    with Reclaim(postgres_url, SETTINGS) as again:
        assert again.directory.get_by_id(ann.id) == ann
