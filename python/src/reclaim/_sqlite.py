"""Storage in the standard library's `sqlite3`: the credentials the
component keeps, and the default directory (an `identities` table) and
mailer (an `outbox` table). One file, WAL, `synchronous=FULL`; every
operation is one `BEGIN IMMEDIATE` transaction, so of several processes
sharing the file exactly one wins a race, and each single-use step is one
guarded UPDATE."""

from __future__ import annotations

import sqlite3
import uuid
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

from ._model import Identity, Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    flow_id TEXT NOT NULL UNIQUE,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    return_to TEXT,
    used_at INTEGER,
    revoked_at INTEGER,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    address_key TEXT,
    last_failed_at INTEGER
);
CREATE INDEX IF NOT EXISTS credentials_by_identity ON credentials (identity_id);
CREATE TABLE IF NOT EXISTS identities (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    email TEXT,
    display_name TEXT,
    locale TEXT,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS identities_by_email ON identities (lower(email));
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    to_name TEXT,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    template TEXT NOT NULL,
    flow_id TEXT,
    status TEXT NOT NULL DEFAULT 'queued'
);
"""


def connect(path: Union[str, Path]) -> sqlite3.Connection:
    """A connection for one process: transactions are ours to open
    (`isolation_level=None`), and a writer waits up to 30 s for another."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(SCHEMA)
    # Files made before credentials carried their address and latest wrong
    # code get the columns in place.
    columns = {row[1] for row in connection.execute("PRAGMA table_info(credentials)")}
    for column in ("address_key TEXT", "last_failed_at INTEGER"):
        if column.split()[0] not in columns:
            connection.execute(f"ALTER TABLE credentials ADD COLUMN {column}")
    return connection


class CredentialStore:
    """The component's `storage` import over the `credentials` table. The
    rule for a credential's state is the Rust host's: used, then revoked,
    then expired (`expires_at <= now`), else active."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def insert(self, c: dict) -> None:
        self._db.execute(
            "INSERT INTO credentials (key, kind, identity_id, flow_id, issued_at, expires_at, return_to, address_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (c["key"], c["kind"], c["identity-id"], c["flow-id"], c["issued-at"], c["expires-at"], c["return-to"],
             c["address-key"]),
        )

    def _row(self, where: str, params: Sequence) -> Optional[sqlite3.Row]:
        cursor = self._db.execute(
            "SELECT key, kind, identity_id, flow_id, issued_at, expires_at, return_to, used_at,"
            f" revoked_at, failed_attempts, address_key FROM credentials WHERE {where}",
            params,
        )
        return cursor.fetchone()

    @staticmethod
    def credential(row: Sequence) -> dict:
        return {
            "key": row[0],
            "kind": row[1],
            "identity-id": row[2],
            "flow-id": row[3],
            "issued-at": row[4],
            "expires-at": row[5],
            "return-to": row[6],
            "address-key": row[10],
        }

    @staticmethod
    def state(row: Sequence, now: int) -> str:
        if row[7] is not None:
            return "used"
        if row[8] is not None:
            return "revoked"
        if row[5] <= now:
            return "expired"
        return "active"

    def consume(self, keys: List[str], kind: str, now: int, max_failed: int):
        marks = ", ".join("?" * len(keys))
        # The guard is in the UPDATE: under the write lock, one caller wins.
        won = self._db.execute(
            "UPDATE credentials SET used_at = ? WHERE kind = ? AND used_at IS NULL AND revoked_at IS NULL"
            f" AND expires_at > ? AND failed_attempts < ? AND key IN ({marks})",
            (now, kind, now, max_failed, *keys),
        ).rowcount == 1
        row = self._row(f"kind = ? AND key IN ({marks})", (kind, *keys))
        if row is None:
            return ("unknown", None)
        if won:
            return ("consumed", self.credential(row))
        state = self.state(row, now)
        # Active but not consumed: its flow ran out of attempts.
        return ("not-active", "revoked" if state == "active" else state)

    def find(self, keys: List[str], kind: str, now: int) -> Optional[dict]:
        marks = ", ".join("?" * len(keys))
        row = self._row(f"kind = ? AND key IN ({marks})", (kind, *keys))
        return None if row is None else self._status(row, now)

    def code_for_flow(self, flow_id: str, now: int) -> Optional[dict]:
        row = self._row("flow_id = ? AND kind = 'code'", (flow_id,))
        return None if row is None else self._status(row, now)

    def _status(self, row: Sequence, now: int) -> dict:
        return {"credential": self.credential(row), "state": self.state(row, now), "failed-attempts": row[9]}

    def record_failed_attempt(self, flow_id: str, max_failed: int, now: int) -> int:
        self._db.execute(
            "UPDATE credentials SET failed_attempts = failed_attempts + 1, last_failed_at = ?,"
            " revoked_at = CASE WHEN failed_attempts + 1 >= ? AND revoked_at IS NULL AND used_at IS NULL"
            " THEN ? ELSE revoked_at END WHERE flow_id = ? AND kind = 'code'",
            (now, max_failed, now, flow_id),
        )
        row = self._db.execute(
            "SELECT failed_attempts FROM credentials WHERE flow_id = ? AND kind = 'code'", (flow_id,)
        ).fetchone()
        return max_failed if row is None else row[0]

    def identity_failed_attempts(self, identity_id: str, since: int) -> int:
        # Every operation is one BEGIN IMMEDIATE transaction: nothing else
        # counts for the identity until this one commits.
        return self._db.execute(
            "SELECT coalesce(sum(failed_attempts), 0) FROM credentials"
            " WHERE identity_id = ? AND kind = 'code' AND last_failed_at > ?",
            (identity_id, since),
        ).fetchone()[0]

    def revoke_identity(self, identity_id: str, kind: Optional[str], now: int) -> int:
        return self._db.execute(
            "UPDATE credentials SET revoked_at = ? WHERE identity_id = ? AND used_at IS NULL"
            " AND revoked_at IS NULL AND expires_at > ? AND (? IS NULL OR kind = ?)",
            (now, identity_id, now, kind, kind),
        ).rowcount


class SqliteDirectory:
    """The default directory: the `identities` table of the database file,
    or any table of yours through `query`, a SELECT that yields `id, pk,
    email, display_name, locale, active` and ends where a WHERE clause can
    follow (see the README: pointing it at an existing users table)."""

    DEFAULT_QUERY = "SELECT id, pk, email, display_name, locale, active FROM identities"

    def __init__(self, connection: sqlite3.Connection, query: str = DEFAULT_QUERY) -> None:
        self._db = connection
        self._query = query

    def _one(self, where: str, value) -> Optional[Identity]:
        row = self._db.execute(f"SELECT * FROM ({self._query}) WHERE {where}", (value,)).fetchone()
        if row is None:
            return None
        id, pk, email, display_name, locale, active = row
        return Identity(str(id), int(pk), email, display_name, locale, bool(active))

    def get_by_id(self, id: str) -> Optional[Identity]:
        return self._one("id = ?", id)

    def get_by_pk(self, pk: int) -> Optional[Identity]:
        return self._one("pk = ?", pk)

    def find_by_email(self, email: str) -> Optional[Identity]:
        return self._one("lower(email) = lower(?)", email)

    def create(self, email: Optional[str] = None, display_name: Optional[str] = None,
               locale: Optional[str] = None, active: bool = True) -> Identity:
        """Adds an identity to the `identities` table."""
        id = str(uuid.uuid4())
        self._db.execute(
            "INSERT INTO identities (id, email, display_name, locale, active) VALUES (?, ?, ?, ?, ?)",
            (id, email, display_name, locale, int(active)),
        )
        found = self.get_by_id(id)
        assert found is not None
        return found


class OutboxMailer:
    """The default mailer: messages go into the `outbox` table in the
    operation's own transaction (a token is never kept without its mail),
    and after the commit each is handed to `send`, or written as an `.eml`
    file into `eml_dir`, then marked sent. With neither they stay queued
    for a courier of yours to read."""

    def __init__(self, connection: sqlite3.Connection, *, eml_dir: Union[str, Path, None] = None,
                 send: Optional[Callable[[Message], None]] = None,
                 sender: str = "Reclaim <no-reply@localhost>") -> None:
        self._db = connection
        self._eml_dir = Path(eml_dir) if eml_dir is not None else None
        self._send = send
        self._sender = sender
        self._queued: List[str] = []

    def queue(self, message: Message) -> None:
        id = str(uuid.uuid4())
        self._db.execute(
            "INSERT INTO outbox (id, recipient, to_name, subject, text_body, html_body, template, flow_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (id, message.to, message.to_name, message.subject, message.text_body, message.html_body,
             message.template, message.flow_id),
        )
        self._queued.append(id)

    def discard(self) -> None:
        """The operation was rolled back: its messages were never queued."""
        self._queued.clear()

    def deliver(self) -> None:
        queued, self._queued = self._queued, []
        if self._send is None and self._eml_dir is None:
            return
        for id in queued:
            row = self._db.execute(
                "SELECT recipient, to_name, subject, text_body, html_body, template, flow_id FROM outbox"
                " WHERE id = ? AND status = 'queued'", (id,)
            ).fetchone()
            if row is None:
                continue
            message = Message(*row, id=id)
            if self._send is not None:
                self._send(message)
            else:
                assert self._eml_dir is not None
                self._eml_dir.mkdir(parents=True, exist_ok=True)
                (self._eml_dir / f"{id}.eml").write_bytes(self.eml(message))
            self._db.execute("UPDATE outbox SET status = 'sent' WHERE id = ?", (id,))

    def eml(self, message: Message) -> bytes:
        """The message as RFC 5322 bytes, text and HTML alternatives."""
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = formataddr((message.to_name or "", message.to))
        mail["Subject"] = message.subject
        mail["Message-ID"] = make_msgid(domain="localhost")
        mail.set_content(message.text_body)
        mail.add_alternative(message.html_body, subtype="html")
        return bytes(mail)
