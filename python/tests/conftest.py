"""What the tests share: the repository's conformance scenarios, the
README's examples, and a database file of their own for each test."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from reclaim import Reclaim, Settings

SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "conformance"
README = Path(__file__).resolve().parents[1] / "README.md"
SECRET = "python-test-secret-0123456789abcdef0123456789"
#: The Rust host the tests run beside (scripts/test builds it first).
RECLAIM = Path(os.environ.get("RECLAIM_BIN", Path(__file__).resolve().parents[2] / "target" / "debug" / "reclaim"))


def python_blocks() -> list[str]:
    """The README's Python examples, as written."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "reclaim.db"


@pytest.fixture
def reclaim(database: Path):
    with Reclaim(database, Settings("https://id.example.test", [SECRET])) as r:
        yield r


def _as_postgres(*command: str) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as `postgres`."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of the test run's own, on a free loopback port:
    the URL of its `postgres` database. Debian's server where installed
    (`scripts/test` installs it); a test that needs it never skips."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert bins, "PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin)"
    bin = bins[-1].parent
    directory = Path(tempfile.mkdtemp(prefix="reclaim-py-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    subprocess.run(_as_postgres(str(bin / "initdb"), "-D", str(directory / "data"), "-A", "trust",
                                "-U", "postgres", "--no-sync"), check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(_as_postgres(str(bin / "pg_ctl"), "-D", str(directory / "data"), "-w", "-l",
                                str(directory / "log"), "-o", options, "start"), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(str(bin / "pg_ctl"), "-D", str(directory / "data"), "-m", "immediate",
                                    "stop"), capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A database of the test's own on the run's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """Where a test that runs on both backends keeps its data."""
    if request.param == "sqlite":
        return str(tmp_path / "reclaim.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def storage_guest(tmp_path_factory) -> Path:
    """The storage contract's test guest on the SQL provider: both built for
    wasm32-wasip2 and composed (`reclaim-compose plug`) from the checkout, as
    the Rust host's and Node.js's tests build the same guest."""
    repository = Path(__file__).resolve().parents[2]
    target = repository / "target" / "guests"
    env = {k: v for k, v in os.environ.items() if k not in ("CARGO_TARGET_DIR", "RUSTFLAGS")}
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--package", "reclaim-storage-contract",
                    "--package", "reclaim-sql-provider", "--target", "wasm32-wasip2", "--release",
                    "--target-dir", str(target)], cwd=repository, env=env, check=True)
    release = target / "wasm32-wasip2" / "release"
    composed = tmp_path_factory.mktemp("guest") / "storage-guest.wasm"
    subprocess.run(["cargo", "run", "--quiet", "--locked", "--package", "reclaim-compose", "--target-dir",
                    str(target), "--", "plug", str(release / "reclaim_storage_contract.wasm"),
                    str(release / "reclaim_sql_provider.wasm"), str(composed)], cwd=repository, env=env, check=True)
    return composed
