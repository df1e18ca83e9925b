"""The host-neutral scenarios of tests/conformance/, run through this
package on SQLite and on PostgreSQL. The Rust host, the wasmtime CLI and
Node.js run the same files; all must agree on every step."""

import json
from pathlib import Path

import pytest

from conftest import SCENARIOS
from reclaim import ManualClock, Reclaim, RecoveryError, Settings

FILES = sorted(SCENARIOS.glob("*.json"))


def test_the_conformance_scenarios_are_there():
    assert len(FILES) >= 6


def outcome(call, on_ok):
    try:
        return {"ok": True, **on_ok(call())}
    except RecoveryError as e:
        return {"error": e.kind, "code": e.code}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_conformance(path: Path, database_url: str):
    scenario = json.loads(path.read_text())
    clock = ManualClock(scenario["clock"])
    s = scenario["settings"]
    settings = Settings(
        public_url="https://id.example.test",
        secrets=s["secrets"],
        default_lifespan=s.get("default_lifespan"),
        max_lifespan=s.get("max_lifespan"),
        revoke_older_links=s.get("revoke_older_links"),
        max_code_attempts=s.get("max_code_attempts"),
    )
    with Reclaim(database_url, settings, clock=clock) as host:
        ids = {
            name: host.directory.create(spec.get("email"), name, spec.get("locale"), spec.get("active", True))
            for name, spec in scenario["identities"].items()
        }
        name_of = {identity.id: name for name, identity in ids.items()}
        saved = {}
        for i, step in enumerate(scenario["steps"]):
            context = f"{path.name} step {i}: {json.dumps(step)}"

            def who():
                if "identity" in step:
                    return ids[step["identity"]].id
                if "identity_id" in step:
                    return step["identity_id"]
                return int(step["identity_pk"])

            now = clock.now_ns()

            def lifespan(expires_at):
                return (expires_at - now) // 1_000_000_000

            op = step["op"]
            if op == "create-link":
                def saved_link(link):
                    if "as" in step:
                        saved[step["as"]] = (link.link.split("token=")[1], link.flow_id)
                    return {"lifespan": lifespan(link.expires_at)}
                got = outcome(lambda: host.create_link(who(), step.get("expires_in")), saved_link)
            elif op == "create-code":
                def saved_code(code):
                    if "as" in step:
                        saved[step["as"]] = (code.code, code.flow_id)
                    return {"lifespan": lifespan(code.expires_at)}
                got = outcome(lambda: host.create_code(who(), step.get("expires_in")), saved_code)
            elif op == "send-recovery-email":
                got = outcome(lambda: host.send_recovery_email(who(), step.get("expires_in"), step.get("template"),
                                                                 sender=step.get("sender")),
                              lambda m: {"lifespan": lifespan(m.expires_at)})
            elif op == "redeem-link":
                token = saved[step["token_of"]][0] if "token_of" in step else step["token"]
                got = outcome(lambda: host.redeem_link(token), lambda r: {"identity": name_of[r.identity_id]})
            elif op == "redeem-code":
                code, flow = saved[step["code_of"]]
                if step.get("wrong"):
                    code = f"{(int(code) + 1) % 1_000_000:06d}"
                elif "code" in step:
                    code = step["code"]
                flow = step.get("flow", flow)
                got = outcome(lambda: host.redeem_code(flow, code), lambda r: {"identity": name_of[r.identity_id]})
            elif op == "revoke":
                got = outcome(lambda: host.revoke(who()), lambda n: {"revoked": n})
            elif op == "advance":
                clock.advance(step["seconds"])
                continue
            elif op == "set-secrets":
                host.settings = Settings(**{**host.settings.__dict__, "secrets": step["secrets"]})
                continue
            elif op == "expect_mail":
                count = host.connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
                assert count == step["count"], context
                if "sender" in step:
                    senders = [row[0] for row in host.connection.execute("SELECT sender FROM outbox")]
                    assert senders.count(step["sender"]) == 1, context
                continue
            else:
                raise AssertionError(f"unknown op in {context}")
            for key, want in step["expect"].items():
                assert got.get(key) == want, f"{key} differs: got {got}\n{context}"
