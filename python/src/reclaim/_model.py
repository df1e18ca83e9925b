"""What the operations take and give, as plain typed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

#: An identity, by its id (a string, usually a UUID) or its integer pk.
IdentityRef = Union[str, int]


@dataclass(frozen=True)
class Identity:
    """An identity of the directory."""

    id: str
    pk: int
    email: Optional[str] = None
    display_name: Optional[str] = None
    locale: Optional[str] = None
    active: bool = True


@dataclass(frozen=True)
class Settings:
    """The host's settings; lifespans in seconds, secrets newest first (at
    least 32 bytes each: text is UTF-8 encoded). A tunable left ``None`` takes
    the component's default (``wit/recovery.wit``, ``settings``)."""

    public_url: str
    secrets: Sequence[Union[str, bytes]]
    default_lifespan: Optional[int] = None
    max_lifespan: Optional[int] = None
    revoke_older_links: Optional[bool] = None
    max_code_attempts: Optional[int] = None
    notify_unknown_recipients: Optional[bool] = None
    #: Wrong codes an identity survives across its flows within
    #: `code_attempt_window` seconds.
    max_code_attempts_per_identity: Optional[int] = None
    code_attempt_window: Optional[int] = None


@dataclass(frozen=True)
class RecoveryLink:
    link: str
    flow_id: str
    #: Nanoseconds since the Unix epoch.
    expires_at: int


@dataclass(frozen=True)
class RecoveryCode:
    #: The page that takes the code; it never carries the code itself.
    link: str
    code: str
    flow_id: str
    expires_at: int


@dataclass(frozen=True)
class Mailed:
    flow_id: str
    expires_at: int


@dataclass(frozen=True)
class Redemption:
    identity_id: str
    flow_id: str
    return_to: Optional[str] = None


@dataclass(frozen=True)
class Message:
    """A message the component rendered, for a mailer to deliver."""

    to: str
    to_name: Optional[str]
    subject: str
    text_body: str
    html_body: str
    template: str
    flow_id: Optional[str] = None
    #: The `From:` the operation asked for (`address` or `Name <address>`);
    #: none: your mailer's own.
    sender: Optional[str] = None
    id: str = field(default="")


class RecoveryError(Exception):
    """The component refused the request. `kind` is the WIT `error-kind`
    (`credential-used`, `code-incorrect`, ...); `code`, `status`, `reason`
    and `message` are Kratos' error fields, chosen by the component."""

    def __init__(self, kind: str, code: int, status: str, reason: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.status = status
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"RecoveryError(kind={self.kind!r}, code={self.code}, message={self.message!r})"
