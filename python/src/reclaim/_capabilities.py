"""What an embedder may plug in: the identity directory, the mailer and the
clock. Each is a protocol; by default the SQL provider answers the
directory and the outbox (`_host`), and the clock is the system's (here)."""

from __future__ import annotations

import time
from typing import Optional, Protocol, runtime_checkable

from ._model import Identity, Message


@runtime_checkable
class Directory(Protocol):
    """Where identities come from: the embedder's own user store."""

    def get_by_id(self, id: str) -> Optional[Identity]: ...

    def get_by_pk(self, pk: int) -> Optional[Identity]: ...

    def find_by_email(self, email: str) -> Optional[Identity]:
        """The identity with this address, compared case-insensitively."""
        ...


@runtime_checkable
class Mailer(Protocol):
    """Takes the component's messages. `queue` runs inside the operation's
    transaction; raise `ValueError` to refuse a message (nothing of the
    operation is then kept). `deliver` runs after the commit."""

    def queue(self, message: Message) -> None: ...

    def deliver(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """The time the component sees (through `wasi:clocks/wall-clock`)."""

    def now_ns(self) -> int: ...


class SystemClock:
    """The operating system's clock."""

    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that stands still until told to move: tests freeze time with
    it, then advance it past a lifespan."""

    def __init__(self, seconds: float) -> None:
        self._ns = int(seconds * 1_000_000_000)

    def now_ns(self) -> int:
        return self._ns

    def advance(self, seconds: float) -> None:
        self._ns += int(seconds * 1_000_000_000)
