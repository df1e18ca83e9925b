"""What the tests share: the repository's conformance scenarios, the
README's examples, and a database file of their own for each test."""

import re
from pathlib import Path

import pytest

from reclaim import Reclaim, Settings

SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "conformance"
README = Path(__file__).resolve().parents[1] / "README.md"
SECRET = "python-test-secret-0123456789abcdef0123456789"


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
