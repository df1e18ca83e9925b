"""Puts the recovery component and the SQL provider into the package: the
very `.wasm` files that the Rust host embeds. A checkout has no copy of it (it is built, not committed),
so the build compiles it from the same repository: only the wasm32-wasip2
components, about a minute cold, not the host (several minutes)."""

import os
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# host/build.rs's build, flag for flag and into the same target directory:
# the three packages built together resolve their dependencies' features
# alike, so the bytes are the host's (tests/test_api.py checks that they
# are), and a host build after this one finds them done.
PACKAGES = ["reclaim-component", "reclaim-edge", "reclaim-filesystem-provider", "reclaim-sql-provider"]
#: What the package ships, from what the build makes.
SHIPPED = {"reclaim.wasm": "reclaim_component.wasm", "sql-provider.wasm": "reclaim_sql_provider.wasm"}
FLAGS_FOR_THE_HOST = ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"]


class ComponentHook(BuildHookInterface):
    def initialize(self, version, build_data):
        package = Path(self.root) / "src" / "reclaim"
        if all((package / name).exists() for name in SHIPPED) and not os.environ.get("RECLAIM_REBUILD_WASM"):
            return
        repository = Path(self.root).parent
        if not (repository / "component" / "Cargo.toml").exists():
            raise RuntimeError(
                f"the components are missing from {package} and there is no Reclaim checkout around "
                f"{self.root} to build them from: run `reclaim component --out` (and `--sql-provider --out`)"
            )
        target = repository / "target" / "component"
        env = {k: v for k, v in os.environ.items() if k not in FLAGS_FOR_THE_HOST}
        packages = [arg for package in PACKAGES for arg in ("--package", package)]
        subprocess.run(
            ["cargo", "build", *packages, "--target", "wasm32-wasip2", "--release", "--locked",
             "--target-dir", str(target)],
            cwd=repository, env=env, check=True, stdout=subprocess.DEVNULL,
        )
        for shipped, built in SHIPPED.items():
            shutil.copyfile(target / "wasm32-wasip2" / "release" / built, package / shipped)
