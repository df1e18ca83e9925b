"""Puts the recovery component into the package: the very `.wasm` that the
Rust host embeds for SQL hosts (`reclaim component --sql`: the engine and
the SQL provider composed). A checkout has no copy of it (it is built, not
committed), so the build makes it from the same repository: the wasm32-wasip2
components and the small `reclaim-compose` tool, not the host (several
minutes)."""

import os
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# host/build.rs's build, flag for flag and into the same target directory:
# the packages built together resolve their dependencies' features alike,
# so the bytes are the host's (tests/test_wheel.py checks that they are),
# and a host build after this one finds them done.
PACKAGES = ["reclaim-component", "reclaim-edge", "reclaim-filesystem-provider", "reclaim-sql-provider"]
FLAGS_FOR_THE_HOST = ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"]


class ComponentHook(BuildHookInterface):
    def initialize(self, version, build_data):
        wasm = Path(self.root) / "src" / "reclaim" / "reclaim.wasm"
        if wasm.exists() and not os.environ.get("RECLAIM_REBUILD_WASM"):
            return
        repository = Path(self.root).parent
        if not (repository / "component" / "Cargo.toml").exists():
            raise RuntimeError(
                f"{wasm} is missing and there is no Reclaim checkout around "
                f"{self.root} to build it from: run `reclaim component --sql --out` to it"
            )
        target = repository / "target" / "component"
        env = {k: v for k, v in os.environ.items() if k not in FLAGS_FOR_THE_HOST}
        packages = [arg for package in PACKAGES for arg in ("--package", package)]
        subprocess.run(
            ["cargo", "build", *packages, "--target", "wasm32-wasip2", "--release", "--locked",
             "--target-dir", str(target)],
            cwd=repository, env=env, check=True, stdout=subprocess.DEVNULL,
        )
        release = target / "wasm32-wasip2" / "release"
        subprocess.run(
            ["cargo", "run", "--quiet", "--locked", "--package", "reclaim-compose", "--target-dir", str(target),
             "--", "sql", str(release / "reclaim_component.wasm"), str(release / "reclaim_sql_provider.wasm"),
             str(wasm)],
            cwd=repository, env=env, check=True, stdout=subprocess.DEVNULL,
        )
