"""Puts the recovery component into the package: the very `.wasm` that the
Rust host embeds, written by `reclaim component`. A checkout has no copy of
it (it is built, not committed), so the build runs the host from the same
repository, building it first if need be."""

import os
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ComponentHook(BuildHookInterface):
    def initialize(self, version, build_data):
        wasm = Path(self.root) / "src" / "reclaim" / "reclaim.wasm"
        if wasm.exists() and not os.environ.get("RECLAIM_REBUILD_WASM"):
            return
        repository = Path(self.root).parent
        if not (repository / "host" / "Cargo.toml").exists():
            raise RuntimeError(
                f"{wasm} is missing and there is no Reclaim checkout around "
                f"{self.root} to build it from: run `reclaim component --out` to it"
            )
        subprocess.run(
            ["cargo", "run", "--quiet", "--locked", "-p", "reclaim", "--",
             "component", "--out", str(wasm)],
            cwd=repository, check=True, stdout=subprocess.DEVNULL,
        )
