"""The recovery component on wasmtime: compiled once per process, a fresh
instance for every operation, inside one transaction that is committed
when the component answers (with a result or a refusal) and rolled back
when it traps. The component is the engine composed with the SQL provider
(`reclaim component --sql`), which answers the engine's storage, outbox
and default directory inside WebAssembly; this host runs the provider's
statements on its database (`_database`: SQLite or PostgreSQL) and
nothing of storage besides."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
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
from ._database import Database
from ._sqlite import OutboxMailer, SqliteDirectory

T = TypeVar("T")

PACKAGE = "reclaim:recovery"
VERSION = "0.1.0"
WASI_VERSION = "0.2.12"


def component_path() -> Path:
    """The packaged component: the `.wasm` the Rust host embeds for SQL
    hosts (`reclaim component --sql`), the engine and the SQL provider."""
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
    """Account recovery for one SQLite database file, or a PostgreSQL
    database by its `postgresql://` URL (psycopg 3: the `postgres` extra).

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
        self._db = Database.open(database)
        #: The file's `identities` table; lookups in it are the provider's.
        self._identities = SqliteDirectory(self._db)
        self.directory: Directory = directory if directory is not None else self._identities
        #: Mail the provider queues in the outbox unless a mailer of yours
        #: takes it; an `OutboxMailer` delivers the outbox after each commit.
        self.mailer: Union[Mailer, OutboxMailer] = (
            mailer if mailer is not None else OutboxMailer(self._db, eml_dir=eml_dir))
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._compiled = _Compiled.shared()
        self._linker = self._link()
        self._turn = threading.Lock()
        with self._turn:
            self._in_transaction(lambda store: self._export(store, "schema", "migrate")(store))

    @property
    def connection(self) -> Any:
        """The driver's connection, `sqlite3` or psycopg (for tools and
        tests)."""
        return self._db.connection

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
                            template: Optional[str] = None, subject: Optional[str] = None,
                            sender: Optional[str] = None) -> Mailed:
        """Mails a recovery link, as authentik's `recovery_email`; `sender`
        (`address` or `Name <address>`, authentik's email stage `from`)
        replaces the configured one."""
        r = self._call("send-recovery-email", identity, expires_in, template, subject, sender)
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

    def _export(self, store: wasmtime.Store, interface: str, name: str) -> Any:
        """The export `name` of `interface` of a fresh instance in `store`."""
        instance = self._linker.instantiate(store, self._compiled.component)
        scope = instance.get_export_index(store, f"{PACKAGE}/{interface}@{VERSION}")
        index = instance.get_export_index(store, name, scope)
        func = instance.get_func(store, index) if index is not None else None
        if func is None:
            raise LookupError(f"the component exports no {interface}.{name}")
        return func

    def _in_transaction(self, run: Callable[[wasmtime.Store], T]) -> T:
        """`run` in a fresh store, inside one `BEGIN IMMEDIATE` transaction:
        committed when it returns, rolled back when it raises (a trap)."""
        store = wasmtime.Store(self._compiled.engine)
        store.set_wasi(wasmtime.WasiConfig())
        self._db.begin()
        try:
            result = run(store)
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()
        return result

    def _call(self, name: str, *args: Any) -> Any:
        phases: dict = {}

        def operation(store: wasmtime.Store) -> Any:
            started = time.perf_counter()
            func = self._export(store, "recovery", name)
            self._in_imports = 0.0
            begun = time.perf_counter()
            result = func(store, *args)
            phases.update(instantiate=begun - started, called=time.perf_counter() - begun)
            return result

        with self._turn:
            started = time.perf_counter()
            result = self._in_transaction(operation)
            total = time.perf_counter() - started
        if self.observe is not None:
            self.observe("instantiate", phases["instantiate"])
            self.observe("component", phases["called"] - self._in_imports)
            self.observe("imports", self._in_imports)
            self.observe("commit", total - phases["instantiate"] - phases["called"])
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
            # Your directory and mailer, when you gave them: the provider
            # hands the engine's calls to these (host-options says whether).
            self._add(root, "directory", {
                "get-by-id": lambda id: self._identity(self.directory.get_by_id(id)),
                "get-by-pk": lambda pk: self._identity(self.directory.get_by_pk(pk)),
                "find-by-email": lambda email: self._identity(self.directory.find_by_email(email)),
            })
            self._add(root, "mailer", {"queue": self._queue})
            self._add(root, "host-options", {"get": lambda: _record({
                "own-directory": self.directory is not self._identities,
                "own-mailer": not isinstance(self.mailer, OutboxMailer),
            })})
            self._add(root, "sql", {
                "database-dialect": lambda: self._db.dialect,
                "execute": self._db.execute,
                "query": self._db.query,
            })
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
        """Your mailer's `queue`, for a message that passed the provider's
        checks (its `to_name` fitted to one line). `result<_, string>`: none
        is ok, a string the error."""
        message = Message(
            to=_field(m, "to"), to_name=_field(m, "to-name"), subject=_field(m, "subject"),
            text_body=_field(m, "text-body"), html_body=_field(m, "html-body"),
            template=_field(m, "template"), flow_id=_field(m, "flow-id"), sender=_field(m, "sender"),
        )
        try:
            self.mailer.queue(message)
        except ValueError as e:
            return str(e)
        return None

    def _settings(self) -> dict:
        s = self.settings

        def nanos(seconds: Optional[int]) -> Optional[int]:
            return None if seconds is None else seconds * 1_000_000_000

        return {
            "public-url": s.public_url,
            "default-lifespan-ns": nanos(s.default_lifespan),
            "max-lifespan-ns": nanos(s.max_lifespan),
            "secrets": [x.encode() if isinstance(x, str) else bytes(x) for x in s.secrets],
            "revoke-older-links": s.revoke_older_links,
            "max-code-attempts": s.max_code_attempts,
            "max-code-attempts-per-identity": s.max_code_attempts_per_identity,
            "code-attempt-window-ns": nanos(s.code_attempt_window),
            "notify-unknown-recipients": s.notify_unknown_recipients,
        }


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
