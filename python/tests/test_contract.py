"""The storage contract's test guest (`tests/guests/storage-contract`) on
the SQL provider, through this package's own `sql` import and
transactions, on SQLite and PostgreSQL: the same scenarios the Rust host
runs on its backends and Node.js on its drivers."""

from pathlib import Path

from wasmtime.component import Component

from conftest import SECRET
from reclaim import Reclaim, Settings


def test_the_storage_guest_finds_the_contract_kept_through_the_provider(database_url: str, storage_guest: Path):
    with Reclaim(database_url, Settings("https://id.example.test", [SECRET])) as reclaim:
        # The package's own store and linker: its sql import, its
        # transactions, and the tables the provider made when it opened.
        guest = Component(reclaim._compiled.engine, storage_guest.read_bytes())

        def call(name: str, *args):
            def run(store):
                instance = reclaim._linker.instantiate(store, guest)
                return instance.get_func(store, instance.get_export_index(store, name))(store, *args)
            return reclaim._in_transaction(run)

        scenarios = call("scenarios")
        assert len(scenarios) >= 13, scenarios
        for n, scenario in enumerate(scenarios):
            identity = reclaim.directory.create(email=f"guest{n}@example.com")
            verdict = call("run", scenario, identity.id)
            assert verdict is None, f"the contract was broken: {verdict}"
