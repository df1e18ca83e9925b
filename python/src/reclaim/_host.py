"""The recovery component on wasmtime: compiled once per process, a fresh
instance for every operation, inside one SQLite transaction that is
committed when the component answers (with a result or a refusal) and
rolled back when it traps."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sqlite3
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

import wasmtime
from wasmtime.component import Component, Linker, Record, Variant

from ._capabilities import Clock, Directory, Mailer, SystemClock
from ._model import (
    Identity, IdentityRef, Mailed, Message, RecoveryCode, RecoveryError, RecoveryLink, Redemption, Settings,
)
from ._sqlite import CredentialStore, OutboxMailer, SqliteDirectory, connect

T = TypeVar("T")

PACKAGE = "reclaim:recovery"
VERSION = "0.1.0"
WASI_VERSION = "0.2.12"


def component_path() -> Path:
    """The packaged component: the `.wasm` the Rust host embeds."""
    return Path(str(resources.files(__package__).joinpath("reclaim.wasm")))


def _record(fields: dict) -> Record:
    """A WIT record for wasmtime: fields by their WIT (kebab-case) names."""
    record = Record()
    for name, value in fields.items():
        setattr(record, name, _record(value) if isinstance(value, dict) else value)
    return record


def _field(record: Any, name: str) -> Any:
    return getattr(record, name)


class _Compiled:
    """The engine and component, shared by every `Reclaim` of the process.
    Compiled code is cached beside the temporary directory, keyed by the
    component's bytes, so a second process starts without Cranelift."""

    _lock = threading.Lock()
    _shared: Optional["_Compiled"] = None

    def __init__(self, wasm: Path) -> None:
        self.engine = wasmtime.Engine()
        data = wasm.read_bytes()
        # Keyed by the component and the runtime: a new wasmtime refuses old
        # code anyway, and then it is compiled again.
        runtime = importlib.metadata.version("wasmtime")
        key = hashlib.sha256(data + runtime.encode()).hexdigest()[:32]
        cache = Path(os.environ.get("RECLAIM_CACHE_DIR", Path(tempfile.gettempdir()) / "reclaim-py"))
        compiled = cache / f"{key}.cwasm"
        try:
            self.component = Component.deserialize_file(self.engine, str(compiled))
        except (OSError, wasmtime.WasmtimeError):
            self.component = Component(self.engine, data)
            cache.mkdir(parents=True, exist_ok=True)
            partial = compiled.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(self.component.serialize())
            os.replace(partial, compiled)

    @classmethod
    def shared(cls) -> "_Compiled":
        with cls._lock:
            if cls._shared is None:
                cls._shared = _Compiled(component_path())
            return cls._shared


class Reclaim:
    """Account recovery for one SQLite database file.

    `directory`, `mailer` and `clock` are the embedder's to plug in; by
    default identities come from the file's `identities` table, mail goes to
    its `outbox` table (and, with `eml_dir`, out as `.eml` files), and the
    time is the system's. Safe to share between threads (operations take
    turns) and between processes (SQLite's write lock)."""

    def __init__(
        self,
        database: Union[str, os.PathLike],
        settings: Settings,
        *,
        directory: Optional[Directory] = None,
        mailer: Optional[Mailer] = None,
        clock: Optional[Clock] = None,
        eml_dir: Union[str, os.PathLike, None] = None,
        observe: Optional[Callable[[str, float], None]] = None,
    ) -> None:
        self.settings = settings
        #: Called after each operation with each phase and its seconds:
        #: `instantiate`, `component` (the export, less the imports), `imports`
        #: (this host's callbacks: SQLite, directory, mailer) and `commit`.
        self.observe = observe
        self._in_imports = 0.0
        self._db: sqlite3.Connection = connect(database)
        self._store = CredentialStore(self._db)
        self.directory: Directory = directory if directory is not None else SqliteDirectory(self._db)
        self.mailer: Mailer = mailer if mailer is not None else OutboxMailer(self._db, eml_dir=eml_dir)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._compiled = _Compiled.shared()
        self._linker = self._link()
        self._turn = threading.Lock()

    @property
    def connection(self) -> sqlite3.Connection:
        """The database connection (for tools and tests)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Reclaim":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # The operations -------------------------------------------------------

    def create_link(self, identity: IdentityRef, expires_in: Optional[str] = None,
                    return_to: Optional[str] = None) -> RecoveryLink:
        """A recovery link, as Kratos' `POST /admin/recovery/link`."""
        r = self._call("create-link", identity, expires_in, return_to)
        return RecoveryLink(_field(r, "link"), _field(r, "flow-id"), _field(r, "expires-at"))

    def create_code(self, identity: IdentityRef, expires_in: Optional[str] = None,
                    return_to: Optional[str] = None) -> RecoveryCode:
        """A six-digit recovery code, as Kratos' `POST /admin/recovery/code`."""
        r = self._call("create-code", identity, expires_in, return_to)
        return RecoveryCode(_field(r, "link"), _field(r, "code"), _field(r, "flow-id"), _field(r, "expires-at"))

    def send_recovery_email(self, identity: IdentityRef, expires_in: Optional[str] = None,
                            template: Optional[str] = None, subject: Optional[str] = None) -> Mailed:
        """Mails a recovery link, as authentik's `recovery_email`."""
        r = self._call("send-recovery-email", identity, expires_in, template, subject)
        return Mailed(_field(r, "flow-id"), _field(r, "expires-at"))

    def send_recovery_code(self, identity: IdentityRef, expires_in: Optional[str] = None) -> Mailed:
        r = self._call("send-recovery-code", identity, expires_in)
        return Mailed(_field(r, "flow-id"), _field(r, "expires-at"))

    def request_recovery(self, email: str, return_to: Optional[str] = None) -> None:
        """A self-service request by address: the same for every address."""
        self._call("request-recovery", email, return_to)

    def redeem_link(self, token: str) -> Redemption:
        return self._redemption(self._call("redeem-link", token))

    def check_link(self, token: str) -> None:
        """Raises what `redeem_link` would, consuming nothing."""
        self._call("check-link", token)

    def redeem_code(self, flow_id: str, code: str) -> Redemption:
        return self._redemption(self._call("redeem-code", flow_id, code))

    def revoke(self, identity: IdentityRef) -> int:
        """Revokes every outstanding link and code; returns how many."""
        return int(self._call("revoke", identity))

    def notify_password_changed(self, identity: IdentityRef) -> None:
        self._call("notify-password-changed", identity)

    @staticmethod
    def _redemption(r: Any) -> Redemption:
        return Redemption(_field(r, "identity-id"), _field(r, "flow-id"), _field(r, "return-to"))

    # One operation --------------------------------------------------------

    def _call(self, name: str, *args: Any) -> Any:
        with self._turn:
            started = time.perf_counter()
            store = wasmtime.Store(self._compiled.engine)
            wasi = wasmtime.WasiConfig()
            store.set_wasi(wasi)
            instance = self._linker.instantiate(store, self._compiled.component)
            interface = instance.get_export_index(store, f"{PACKAGE}/recovery@{VERSION}")
            index = instance.get_export_index(store, name, interface)
            func = instance.get_func(store, index) if index is not None else None
            if func is None:
                raise LookupError(f"the component exports no {name}")
            instantiated = time.perf_counter()
            self._in_imports = 0.0
            self._db.execute("BEGIN IMMEDIATE")
            begun = time.perf_counter()
            try:
                result = func(store, *args)
            except BaseException:
                self._db.execute("ROLLBACK")
                discard = getattr(self.mailer, "discard", None)
                if discard is not None:
                    discard()
                raise
            called = time.perf_counter()
            self._db.execute("COMMIT")
            committed = time.perf_counter()
        if self.observe is not None:
            self.observe("instantiate", instantiated - started)
            self.observe("component", called - begun - self._in_imports)
            self.observe("imports", self._in_imports)
            self.observe("commit", (begun - instantiated) + (committed - called))
        self.mailer.deliver()
        return _unwrap(result)

    # The imports ----------------------------------------------------------

    def _link(self) -> Linker:
        linker = Linker(self._compiled.engine)
        linker.allow_shadowing = True
        linker.add_wasip2()
        with linker.root() as root:
            # The component's "now" is the embedder's clock.
            with root.add_instance(f"wasi:clocks/wall-clock@{WASI_VERSION}") as clocks:
                clocks.add_func("now", lambda _s: self._datetime(self.clock.now_ns()))
                clocks.add_func("resolution", lambda _s: self._datetime(1))
            self._add(root, "directory", {
                "get-by-id": lambda id: self._identity(self.directory.get_by_id(id)),
                "get-by-pk": lambda pk: self._identity(self.directory.get_by_pk(pk)),
                "find-by-email": lambda email: self._identity(self.directory.find_by_email(email)),
            })
            store = self._store
            self._add(root, "storage", {
                "insert": lambda c: store.insert(_fields(c)),
                "consume": lambda keys, kind, now, max_failed: _consume(store.consume(keys, kind, now, max_failed)),
                "find": lambda keys, kind, now: _maybe(store.find(keys, kind, now)),
                "code-for-flow": lambda flow, now: _maybe(store.code_for_flow(flow, now)),
                "record-failed-attempt": store.record_failed_attempt,
                "identity-failed-attempts": store.identity_failed_attempts,
                "revoke-identity": store.revoke_identity,
            })
            self._add(root, "mailer", {"queue": self._queue})
            self._add(root, "settings", {
                "get": lambda: _record(self._settings()),
                "template": lambda _name, _locale: None,
            })
        return linker

    def _add(self, root: Any, interface: str, funcs: dict) -> None:
        with root.add_instance(f"{PACKAGE}/{interface}@{VERSION}") as instance:
            for name, func in funcs.items():
                instance.add_func(name, self._timed(func))

    def _timed(self, func: Callable[..., T]) -> Callable[..., T]:
        """An import as wasmtime calls it (the store first), its time
        counted as the host's own."""
        def call(_store: Any, *args: Any) -> T:
            started = time.perf_counter()
            try:
                return func(*args)
            finally:
                self._in_imports += time.perf_counter() - started
        return call

    @staticmethod
    def _datetime(ns: int) -> Record:
        return _record({"seconds": ns // 1_000_000_000, "nanoseconds": ns % 1_000_000_000})

    @staticmethod
    def _identity(identity: Optional[Identity]) -> Optional[Record]:
        if identity is None:
            return None
        return _record({
            "id": identity.id, "pk": identity.pk, "email": identity.email,
            "display-name": identity.display_name, "locale": identity.locale, "active": identity.active,
        })

    def _queue(self, m: Any) -> Optional[str]:
        message = Message(
            to=_field(m, "to"), to_name=_field(m, "to-name"), subject=_field(m, "subject"),
            text_body=_field(m, "text-body"), html_body=_field(m, "html-body"),
            template=_field(m, "template"), flow_id=_field(m, "flow-id"),
        )
        refused = _refusal(message)
        if refused is None:
            try:
                self.mailer.queue(message)
            except ValueError as e:
                refused = str(e)
        # `result<_, string>`: none is ok, a string the error.
        return refused

    def _settings(self) -> dict:
        s = self.settings
        return {
            "public-url": s.public_url,
            "default-lifespan-ns": s.default_lifespan * 1_000_000_000,
            "max-lifespan-ns": s.max_lifespan * 1_000_000_000,
            "secrets": [x.encode() if isinstance(x, str) else bytes(x) for x in s.secrets],
            "revoke-older-links": s.revoke_older_links,
            "max-code-attempts": s.max_code_attempts,
            "max-code-attempts-per-identity": s.max_code_attempts_per_identity,
            "code-attempt-window-ns": s.code_attempt_window * 1_000_000_000,
            "notify-unknown-recipients": s.notify_unknown_recipients,
        }


def _fields(record: Any) -> dict:
    return dict(record.__dict__)


def _maybe(status: Optional[dict]) -> Optional[Record]:
    return None if status is None else _record(status)


def _consume(outcome: tuple) -> Any:
    tag, value = outcome
    if tag == "consumed":
        return _record(value)
    if tag == "unknown":
        return None
    return value  # not-active: the state's name


_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def _refusal(message: Message) -> Optional[str]:
    """The mailer's checks against header injection. Not the Rust host's
    (`host/src/mail/mod.rs`, `check`), which also parses the address as
    RFC 5321 and caps the subject's length."""
    local, _, domain = message.to.partition("@")
    if not local or not domain or "@" in domain or any(c.isspace() or c in _CONTROL for c in message.to):
        return "the recipient is not a deliverable email address"
    if message.to_name is not None and any(c in _CONTROL for c in message.to_name):
        return "the recipient's name contains control characters"
    if not message.subject or any(c in _CONTROL for c in message.subject):
        return "the subject is empty or contains control characters"
    return None


def _unwrap(result: Any) -> Any:
    """`ok` as its value; `err(recovery-error)` raised as `RecoveryError`."""
    if isinstance(result, Variant):
        if result.tag == "err":
            raise _error(result.payload)
        return result.payload
    if isinstance(result, Record) and hasattr(result, "kind") and hasattr(result, "reason"):
        raise _error(result)
    return result


def _error(e: Any) -> RecoveryError:
    return RecoveryError(_field(e, "kind"), _field(e, "code"), _field(e, "status"),
                         _field(e, "reason"), _field(e, "message"))
