"""The package README's examples, run exactly as written: an example that
stops working fails here, not in a newcomer's first ten minutes."""

import contextlib
import io
import sqlite3
from pathlib import Path

from reclaim import Reclaim, Settings

from conftest import SECRET, python_blocks


def test_the_first_example_redeems_a_link_once_and_mails_the_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(python_blocks()[0], {"secret": SECRET})
    assert printed.getvalue() == "True\ncredential-used 410\n"
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_the_users_table_example_reads_djangos_auth_user(database: Path):
    with Reclaim(database, Settings("https://id.example.com", [SECRET])) as reclaim:
        reclaim.connection.executescript("""
            CREATE TABLE auth_user (id INTEGER PRIMARY KEY, username TEXT, email TEXT, is_active INTEGER);
            INSERT INTO auth_user VALUES (7, 'ann', 'ann@example.com', 1);
        """)
        exec(python_blocks()[1], {"reclaim": reclaim})
        link = reclaim.create_link(7)
        assert reclaim.redeem_link(link.link.split("token=")[1]).identity_id == "7"
    assert sqlite3.connect(database).execute("SELECT count(*) FROM auth_user").fetchone() == (1,)
