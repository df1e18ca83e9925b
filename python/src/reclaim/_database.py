"""The connection every statement of an operation runs on: a SQLite file
(the standard library's `sqlite3`) or PostgreSQL (psycopg 3, from the
`postgres` extra). It is the `sql` import's three functions for the SQL
provider, the transactions, and this package's own few statements (the
identities it adds, the courier's claim). `Database.open` is the one place
that picks a driver."""

from __future__ import annotations

import os
import sqlite3
from typing import Any, List, Sequence, Union

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _param(value: str) -> Any:
    """A value of the `sql` import (`n`, `i42`, `ttext`) as the driver binds it."""
    kind, rest = value[0], value[1:]
    if kind == "t":
        return rest
    if kind == "i":
        return int(rest)
    return None


def _value(column: Any) -> str:
    """A column as the `sql` import answers it."""
    if column is None:
        return "n"
    if isinstance(column, (bool, int)):
        return f"i{int(column)}"
    return f"t{column}"


class Database:
    """One connection and its dialect (`sqlite` or `postgresql`)."""

    dialect: str

    @staticmethod
    def open(target: Union[str, os.PathLike]) -> "Database":
        """A `postgresql://` URL, or the path of a SQLite file."""
        if isinstance(target, str) and target.startswith(POSTGRES_SCHEMES):
            return _Postgres.connect(target)
        return _Sqlite.connect(target)

    @staticmethod
    def of(connection: Any) -> "Database":
        """A connection you opened (`reclaim.connection`, or your own)."""
        if isinstance(connection, Database):
            return connection
        if isinstance(connection, sqlite3.Connection):
            return _Sqlite(connection)
        return _Postgres(connection)

    @property
    def connection(self) -> Any:
        """The driver's connection (for tools and tests)."""
        return self._connection

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, statement: str, params: List[str]) -> int:
        """The `sql` import's `execute`: a statement in this dialect; the
        rows it changed (none for DDL)."""
        return max(self._run(statement, [_param(p) for p in params]).rowcount, 0)

    def query(self, statement: str, params: List[str]) -> List[List[str]]:
        """The `sql` import's `query`: each row as a list of its columns."""
        cursor = self._run(statement, [_param(p) for p in params])
        return [[_value(c) for c in row] for row in cursor.fetchall()] if cursor.description else []

    def _run(self, statement: str, params: List[Any]) -> Any:
        """A statement in this dialect on the driver: its cursor."""
        raise NotImplementedError

    def run(self, statement: str, params: Sequence[Any] = ()) -> List[tuple]:
        """One of this package's own statements, written with `?`: its rows."""
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self._connection.execute("COMMIT")

    def rollback(self) -> None:
        self._connection.execute("ROLLBACK")

    def close(self) -> None:
        self._connection.close()


class _Sqlite(Database):
    dialect = "sqlite"

    @staticmethod
    def connect(path: Union[str, os.PathLike]) -> "_Sqlite":
        """Transactions are ours to open (`isolation_level=None`), and a
        writer waits up to 30 s for another."""
        connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        return _Sqlite(connection)

    def _run(self, statement: str, params: List[Any]) -> Any:
        return self._connection.execute(statement, params)

    def run(self, statement: str, params: Sequence[Any] = ()) -> List[tuple]:
        return [tuple(row) for row in self._connection.execute(statement, params)]

    def begin(self) -> None:
        # The write lock at once: of several processes, one runs its
        # operation at a time, so each single-use step has one winner.
        self._connection.execute("BEGIN IMMEDIATE")


class _Postgres(Database):
    dialect = "postgresql"

    @staticmethod
    def connect(url: str) -> "_Postgres":
        try:
            import psycopg
        except ImportError as e:
            raise ImportError(
                "a postgresql:// database needs psycopg 3: pip install 'reclaim-recovery[postgres]'") from e
        # Transactions are ours to open, as with SQLite.
        return _Postgres(psycopg.connect(url, autocommit=True))

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        import psycopg
        # The provider writes PostgreSQL's own `$1` placeholders.
        self._raw = psycopg.RawCursor(connection)

    def _run(self, statement: str, params: List[Any]) -> Any:
        return self._raw.execute(statement, params)

    def run(self, statement: str, params: Sequence[Any] = ()) -> List[tuple]:
        cursor = self._connection.execute(statement.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []

    def begin(self) -> None:
        self._connection.execute("BEGIN")
