"""Ory's own Python SDK (`ory-kratos-client`, installed by `scripts/test`)
drives Reclaim's self-service flow API as an app built on Kratos does,
unchanged: every answer is parsed by the SDK's own models. Run by
`server/tests/all/kratos_sdk.rs` against servers it starts; exits non-zero
at the first surprise.

    kratos_flows.py ENDING BASE_URL OUTBOX_DIR

ENDING is `continue_with` (the server runs with
RECLAIM_USE_CONTINUE_WITH_TRANSITIONS), `redirect` (Kratos' default),
`expiry` (flows that last a second) or `edge` (the edge component under
`wasmtime serve`, which ends a flow with a redirect and keeps no sessions).
"""

import email
import email.policy
import json
import pathlib
import re
import sys
import time

import ory_kratos_client
from ory_kratos_client.api.frontend_api import FrontendApi
from ory_kratos_client.exceptions import ApiException
from ory_kratos_client.models import (
    UpdateRecoveryFlowBody,
    UpdateRecoveryFlowWithCodeMethod,
    UpdateSettingsFlowBody,
    UpdateSettingsFlowWithPasswordMethod,
)

NEW_PASSWORD = "correct horse battery staple 7"


def codes(outbox: pathlib.Path, count: int) -> list[str]:
    """The codes of the first `count` mails, oldest first (waits up to 10 s)."""
    deadline = time.time() + 10
    while True:
        files = sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime)
        if len(files) >= count or time.time() > deadline:
            break
        time.sleep(0.05)
    found = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()
        match = re.search(r"enter this code.*?(\d{6})", text, re.S)
        if match:
            found.append(match.group(1))
    assert len(found) >= count, (count, found)
    return found


def mails_to(outbox: pathlib.Path, address: str) -> int:
    """How many mails in the outbox are addressed to `address` (others, such
    as the notice of a password set, may arrive at any time)."""
    count = 0
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        count += address in str(message["To"])
    return count


def ids(flow) -> list[int]:
    return [m.id for m in flow.ui.messages or []]


def code_body(email_address=None, code=None):
    return UpdateRecoveryFlowBody(UpdateRecoveryFlowWithCodeMethod(
        method="code", email=email_address, code=code))


def native_recovery(api: FrontendApi, outbox: pathlib.Path, ending: str, mails: int) -> str:
    """A native app's recovery with a code; its session token (or None with
    Kratos' default ending, which gives an API client none)."""
    flow = api.create_native_recovery_flow()
    assert flow.type == "api" and flow.state == "choose_method" and flow.active == "code", flow
    labels = [n.meta.label.id for n in flow.ui.nodes if n.meta.label]
    assert labels == [1070007, 1070009], labels

    sent = api.update_recovery_flow(flow.id, code_body("ann@example.com"))
    assert sent.state == "sent_email" and ids(sent) == [1060003], sent

    wrong = api.update_recovery_flow(flow.id, code_body(code="000000"))
    assert ids(wrong) == [4060006] and wrong.id == flow.id, wrong

    code = codes(outbox, mails)[-1]
    if ending == "redirect":
        try:
            api.update_recovery_flow(flow.id, code_body("", code))
        except ApiException as e:
            assert e.status == 422, e
            body = json.loads(e.body)
            assert body["error"]["id"] == "browser_location_change_required", body
            assert "?flow=" in body["redirect_browser_to"], body
            return None
        raise AssertionError("Kratos' default ending is a 422")
    passed = api.update_recovery_flow(flow.id, code_body("", code))
    assert passed.state == "passed_challenge", passed
    actions = [c.actual_instance for c in passed.continue_with]
    assert [a.action for a in actions] == ["set_ory_session_token", "show_settings_ui"], actions
    token = actions[0].ory_session_token

    session = api.to_session(x_session_token=token)
    assert session.active and session.authentication_methods[0].method == "code_recovery", session
    settings = api.get_settings_flow(actions[1].flow.id, x_session_token=token)
    assert settings.state == "show_form" and ids(settings) == [1060001], settings
    return token


def set_password(api: FrontendApi, token: str) -> None:
    settings = api.create_native_settings_flow(x_session_token=token)
    assert settings.type == "api" and settings.state == "show_form", settings
    try:
        api.update_settings_flow(settings.id, UpdateSettingsFlowBody(
            UpdateSettingsFlowWithPasswordMethod(method="password", password="short")),
            x_session_token=token)
        raise AssertionError("a short password is refused")
    except ApiException as e:
        assert e.status == 400, e
        refused = json.loads(e.body)
        password = [n for n in refused["ui"]["nodes"] if n["attributes"]["name"] == "password"][0]
        assert password["messages"][0]["id"] == 4000005, refused
    saved = api.update_settings_flow(settings.id, UpdateSettingsFlowBody(
        UpdateSettingsFlowWithPasswordMethod(method="password", password=NEW_PASSWORD)),
        x_session_token=token)
    assert saved.state == "success" and ids(saved) == [1050001], saved
    try:
        api.to_session(x_session_token=token)
        raise AssertionError("the session ends with the password")
    except ApiException as e:
        assert e.status == 401, e


def edge_cases(api: FrontendApi, base: str, outbox: pathlib.Path, ann_mails: int) -> None:
    """The refusals, and no mail to an unknown address; `ann_mails` is how
    many mails Ann has by the end (one more code is asked for here)."""
    # An unknown address: the same flow, state and message, and no mail.
    flow = api.create_native_recovery_flow()
    unknown = api.update_recovery_flow(flow.id, code_body("nobody@example.com"))
    assert unknown.state == "sent_email" and ids(unknown) == [1060003], unknown
    # A missing address.
    fresh = api.create_native_recovery_flow()
    try:
        api.update_recovery_flow(fresh.id, code_body())
        raise AssertionError("a missing address is refused")
    except ApiException as e:
        assert e.status == 400, e
        body = json.loads(e.body)
        assert body["ui"]["nodes"][1]["messages"][0]["id"] == 4000002, body
    # The limit: four wrong codes, then a new flow with 4000001.
    for _ in range(4):
        wrong = api.update_recovery_flow(flow.id, code_body("", "000000"))
        assert ids(wrong) == [4060006], wrong
    limited = api.update_recovery_flow(flow.id, code_body("", "000000"))
    assert limited.id != flow.id and ids(limited) == [4000001], limited

    # A browser flow: its cookie and CSRF token, as a server-side app passes them on.
    response = api.create_browser_recovery_flow_with_http_info()
    cookie = response.headers["set-cookie"].split(";")[0]
    browser = response.data
    assert browser.type == "browser", browser
    csrf = [n for n in browser.ui.nodes if n.attributes.actual_instance.name == "csrf_token"][0]
    token = csrf.attributes.actual_instance.value
    again = api.get_recovery_flow(browser.id, cookie=cookie)
    assert again.id == browser.id
    try:
        api.get_recovery_flow(browser.id)
        raise AssertionError("a browser flow without its cookie is refused")
    except ApiException as e:
        assert e.status == 403 and json.loads(e.body)["error"]["id"] == "security_csrf_violation", e
    sent = api.update_recovery_flow(browser.id, UpdateRecoveryFlowBody(UpdateRecoveryFlowWithCodeMethod(
        method="code", email="nobody@example.com", csrf_token=token)), cookie=cookie)
    assert sent.state == "sent_email", sent
    # Both requests went through the queue; the known address's next mail shows it has moved on.
    api.update_recovery_flow(api.create_native_recovery_flow().id, code_body("ann@example.com"))
    deadline = time.time() + 10
    while mails_to(outbox, "ann@example.com") < ann_mails and time.time() < deadline:
        time.sleep(0.05)
    assert mails_to(outbox, "ann@example.com") == ann_mails, ann_mails
    assert mails_to(outbox, "nobody@example.com") == 0, "nothing mailed to the unknown address"

    # An unknown flow.
    try:
        api.get_recovery_flow("5f0a8c1e-0000-4000-8000-000000000000")
        raise AssertionError("an unknown flow is 404")
    except ApiException as e:
        assert e.status == 404, e


def expired(api: FrontendApi) -> None:
    flow = api.create_native_recovery_flow()
    time.sleep(1.2)
    try:
        api.update_recovery_flow(flow.id, code_body("ann@example.com"))
        raise AssertionError("an expired flow is 410")
    except ApiException as e:
        assert e.status == 410, e
        body = json.loads(e.body)
        assert body["error"]["id"] == "self_service_flow_expired", body
        new = api.get_recovery_flow(body["use_flow_id"])
        assert ids(new) == [4060005], new


def main(ending: str, base: str, outbox: str) -> None:
    outbox = pathlib.Path(outbox)
    with ory_kratos_client.ApiClient(ory_kratos_client.Configuration(host=base)) as client:
        api = FrontendApi(client)
        if ending == "expiry":
            expired(api)
        elif ending == "edge":
            assert native_recovery(api, outbox, "redirect", 1) is None
            # A code, then the one asked for at the end.
            edge_cases(api, base, outbox, 2)
        else:
            token = native_recovery(api, outbox, ending, 1)
            if token:
                set_password(api, token)
                assert len(codes(outbox, 1)) == 1
                # A code, the password's notice, the code asked for at the end.
                edge_cases(api, base, outbox, 3)
    print(f"kratos flows ({ending}): ok")


if __name__ == "__main__":
    main(*sys.argv[1:])
