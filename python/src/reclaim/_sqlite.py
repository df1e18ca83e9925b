"""The package's own uses of the database beside the SQL provider's
(every storage rule and statement is the provider's, `providers/sql`): a
directory over a table of yours, identities added to the provider's
`identities` table, and the courier that delivers the outbox after each
commit. Each runs on a `Database`, SQLite or PostgreSQL."""

from __future__ import annotations

import time
import uuid
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ._database import Database
from ._model import Identity, Message

class SqliteDirectory:
    """The default directory: the `identities` table of the database, or
    any table of yours through `query`, a SELECT that yields `id, pk,
    email, display_name, locale, active` (see the README: pointing it at an
    existing users table). `connection` is `reclaim.connection` (SQLite or
    PostgreSQL) or a `Database`."""

    DEFAULT_QUERY = "SELECT id, pk, email, display_name, locale, active FROM identities"

    def __init__(self, connection: Any, query: str = DEFAULT_QUERY) -> None:
        self._db = Database.of(connection)
        self._query = query

    def _one(self, where: str, value) -> Optional[Identity]:
        rows = self._db.run(f"SELECT * FROM ({self._query}) AS directory WHERE {where}", (value,))
        if not rows:
            return None
        id, pk, email, display_name, locale, active = rows[0]
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
        self._db.run(
            "INSERT INTO identities (id, email, display_name, locale, active, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (id, email, display_name, locale, bool(active), time.time_ns()),
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

    def __init__(self, connection: Any, *, eml_dir: Union[str, Path, None] = None,
                 send: Optional[Callable[[Message], None]] = None,
                 sender: str = "Reclaim <no-reply@localhost>") -> None:
        self._db = Database.of(connection)
        self._eml_dir = Path(eml_dir) if eml_dir is not None else None
        self._send = send
        self._sender = sender

    def deliver(self) -> None:
        if self._send is None and self._eml_dir is None:
            return
        claimed = self._db.run(
            "UPDATE outbox SET status = 'processing' WHERE status = 'queued'"
            " RETURNING id, recipient, to_name, subject, text_body, html_body, template, flow_id, sender"
        )
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
                for row in claimed[n:]:
                    self._db.run("UPDATE outbox SET status = 'queued' WHERE id = ?", (row[0],))
                raise
            self._db.run("UPDATE outbox SET status = 'sent' WHERE id = ?", (id,))

    def eml(self, message: Message) -> bytes:
        """The message as RFC 5322 bytes, text and HTML alternatives."""
        mail = EmailMessage()
        mail["From"] = message.sender or self._sender
        mail["To"] = formataddr((message.to_name or "", message.to))
        mail["Subject"] = message.subject
        mail["Message-ID"] = make_msgid(domain="localhost")
        mail.set_content(message.text_body)
        mail.add_alternative(message.html_body, subtype="html")
        return bytes(mail)
