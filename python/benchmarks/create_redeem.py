"""Create-then-redeem, one caller, for SECONDS: the Python row of
`scripts/bench-hosts`, on a SQLite file or the `postgresql://` DATABASE_URL
given after SECONDS. Prints pairs per second and where an operation's time
goes (the package's `observe` phases)."""

import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from reclaim import Reclaim, Settings

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
url = sys.argv[2] if len(sys.argv) > 2 else None
phases: dict = defaultdict(float)
with tempfile.TemporaryDirectory() as dir, Reclaim(
    url or Path(dir) / "python.db",
    Settings("https://id.example.test", ["bench-secret-0123456789abcdef0123456789abcdef"]),
    observe=lambda phase, s: phases.__setitem__(phase, phases[phase] + s),
) as reclaim:
    ann = reclaim.directory.create(email="ann@example.com")

    def pair() -> None:
        link = reclaim.create_link(ann.id)
        reclaim.redeem_link(link.link.rsplit("token=", 1)[1])

    for _ in range(50):
        pair()
    phases.clear()
    started, pairs = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        pair()
        pairs += 1
    elapsed = time.perf_counter() - started
total = sum(phases.values())
print(json.dumps({
    "host": "python", "storage": "postgresql" if url else "sqlite", "pairs_per_s": round(pairs / elapsed, 1),
    "share": {k: round(v / elapsed, 3) for k, v in phases.items()},
    "other": round(1 - total / elapsed, 3),
}))
