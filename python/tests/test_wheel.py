"""The package as a platform gets it: a wheel built from the checkout (its
build hook making the component afresh), installed into an empty virtual
environment, and the README's example run there."""

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from conftest import RECLAIM, SECRET, python_blocks

PACKAGE = Path(__file__).resolve().parents[1]


def test_the_wheel_is_pure_python_carries_the_hosts_component_and_runs_the_readme(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(PACKAGE)],
        check=True, env={**os.environ, "RECLAIM_REBUILD_WASM": "1"},
    )
    [wheel] = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == "reclaim_recovery-0.1.0-py3-none-any.whl"
    packed = zipfile.ZipFile(wheel).namelist()
    assert "reclaim/reclaim.wasm" in packed
    # The build hook's composition, byte for byte the one the host embeds.
    subprocess.run([RECLAIM, "component", "--sql", "--out", tmp_path / "host.wasm"], check=True,
                   capture_output=True)
    built = zipfile.ZipFile(wheel).read("reclaim/reclaim.wasm")
    assert built == (tmp_path / "host.wasm").read_bytes()
    assert not any(name.startswith("tests/") for name in packed)

    empty = tmp_path / "project"
    venv.create(empty / ".venv", with_pip=True)
    python = empty / ".venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
    )
    example = python_blocks()[0]
    ran = subprocess.run(
        [python, "-c", f"secret = {SECRET!r}\n{example}"],
        cwd=empty, check=True, capture_output=True, text=True,
    )
    assert ran.stdout == "True\ncredential-used 410\n"
