"""What the tests share: the repository's conformance scenarios, and a
database file of their own for each test."""

from pathlib import Path

import pytest

from reclaim import Reclaim, Settings

SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "conformance"
SECRET = "python-test-secret-0123456789abcdef0123456789"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "reclaim.db"


@pytest.fixture
def reclaim(database: Path):
    with Reclaim(database, Settings("https://id.example.test", [SECRET])) as r:
        yield r
