"""Races across processes: 32 processes, each with its own `Reclaim` on
the same database (a SQLite file, a PostgreSQL database), redeem one link
at the same moment. SQLite's write lock, PostgreSQL's row lock and the
provider's guarded UPDATE must leave exactly one winner, round after
round."""

import multiprocessing as mp

from conftest import SECRET
from reclaim import Reclaim, RecoveryError, Settings

PROCESSES = 32
ROUNDS = 10


def redeemer(database: str, tokens, barrier, results) -> None:
    with Reclaim(database, Settings("https://id.example.test", [SECRET])) as reclaim:
        while (token := tokens.recv()) is not None:
            barrier.wait()
            try:
                reclaim.redeem_link(token)
                results.send("ok")
            except RecoveryError as e:
                results.send(e.kind)


def test_of_32_processes_redeeming_one_link_exactly_one_wins(database_url: str):
    with Reclaim(database_url, Settings("https://id.example.test", [SECRET])) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com")
        context = mp.get_context("spawn")
        barrier = context.Barrier(PROCESSES)
        pipes = [(context.Pipe(), context.Pipe()) for _ in range(PROCESSES)]
        workers = [
            context.Process(target=redeemer, args=(database_url, tokens[0], barrier, results[1]))
            for tokens, results in pipes
        ]
        for worker in workers:
            worker.start()
        try:
            for round in range(ROUNDS):
                token = reclaim.create_link(ann.id).link.split("token=")[1]
                for tokens, _ in pipes:
                    tokens[1].send(token)
                outcomes = sorted(results[0].recv() for _, results in pipes)
                assert outcomes.count("ok") == 1, f"round {round}: {outcomes}"
                assert outcomes.count("credential-used") == PROCESSES - 1, f"round {round}: {outcomes}"
        finally:
            for tokens, _ in pipes:
                tokens[1].send(None)
            for worker in workers:
                worker.join(timeout=60)
        assert all(worker.exitcode == 0 for worker in workers)
