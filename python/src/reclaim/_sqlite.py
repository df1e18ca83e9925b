"""The standard library's `sqlite3` under the SQL provider: the connection
the provider's statements run on (every storage rule and statement is the
provider's, `providers/sql`), a directory over a table of yours, and the
courier that delivers the outbox after each commit. One file, WAL,
`synchronous=FULL`; every operation is one `BEGIN IMMEDIATE` transaction,
so of several processes sharing the file exactly one wins a race."""

from __future__ import annotations

import sqlite3
import uuid
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

from ._model import Identity, Message

def connect(path: Union[str, Path]) -> sqlite3.Connection:
    """A connection for one process: transactions are ours to open
    (`isolation_level=None`), and a writer waits up to 30 s for another.
    The tables are the SQL provider's (`providers/sql`), made by its
    `migrate` when `Reclaim` opens the file."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    return connection


def execute(connection: sqlite3.Connection, statement: str, params: List[Any]) -> int:
    """The `sql` import's `execute`: rows changed (none for DDL)."""
    return max(connection.execute(statement, params).rowcount, 0)


def query(connection: sqlite3.Connection, statement: str, params: List[Any]) -> List[List[Any]]:
    """The `sql` import's `query`: each row as a list of its columns."""
    return [list(row) for row in connection.execute(statement, params)]


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
    """The outbox's courier: the SQL provider queues each message in the
    `outbox` table inside the operation's transaction (a token is never kept
    without its mail); after the commit this hands each queued message to
    `send`, or writes it as an `.eml` file into `eml_dir`, then marks it
    sent. With neither, messages stay queued for a courier of yours.
    Claiming is one UPDATE, so of several processes each message goes out
    from one."""

    def __init__(self, connection: sqlite3.Connection, *, eml_dir: Union[str, Path, None] = None,
                 send: Optional[Callable[[Message], None]] = None,
                 sender: str = "Reclaim <no-reply@localhost>") -> None:
        self._db = connection
        self._eml_dir = Path(eml_dir) if eml_dir is not None else None
        self._send = send
        self._sender = sender

    def deliver(self) -> None:
        if self._send is None and self._eml_dir is None:
            return
        claimed = self._db.execute(
            "UPDATE outbox SET status = 'sending' WHERE status = 'queued'"
            " RETURNING id, recipient, to_name, subject, text_body, html_body, template, flow_id"
        ).fetchall()
        for n, (id, *fields) in enumerate(claimed):
            try:
                message = Message(*fields, id=id)
                if self._send is not None:
                    self._send(message)
                else:
                    assert self._eml_dir is not None
                    self._eml_dir.mkdir(parents=True, exist_ok=True)
                    (self._eml_dir / f"{id}.eml").write_bytes(self.eml(message))
            except BaseException:
                # This one and those not yet tried wait for the next courier.
                self._db.executemany("UPDATE outbox SET status = 'queued' WHERE id = ?",
                                     [(row[0],) for row in claimed[n:]])
                raise
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
