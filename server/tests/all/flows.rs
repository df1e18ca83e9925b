//! Kratos' self-service flow API of a running `reclaim serve`, over plain
//! HTTP as an SPA or a native app speaks it: the code method from start to
//! a new password, both of Kratos' endings, the limits, CSRF, expiry, the
//! hand-off, and a race of one right code.

use std::sync::Barrier;

use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::common::{NEW_PASSWORD, RETURN_URL, Server, client, csrf_token_in};

const CONTINUE_WITH: (&str, &str) = ("RECLAIM_USE_CONTINUE_WITH_TRANSITIONS", "true");

fn api_flow(server: &Server) -> Value {
    let started = client()
        .get(server.url("/self-service/recovery/api"))
        .send()
        .unwrap();
    assert_eq!(started.status(), 200);
    started.json().unwrap()
}

fn submit(server: &Server, flow: &Value, body: Value) -> Response {
    client()
        .post(server.url(&format!(
            "/self-service/recovery?flow={}",
            flow["id"].as_str().unwrap()
        )))
        .json(&body)
        .send()
        .unwrap()
}

fn send_code(server: &Server, flow: &Value, email: &str) -> Value {
    let sent = submit(server, flow, json!({"method": "code", "email": email}));
    assert_eq!(sent.status(), 200);
    sent.json().unwrap()
}

fn message_ids(flow: &Value) -> Vec<u64> {
    flow["ui"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// The six-digit code in the newest of `count` mails.
fn mailed_code(server: &Server, count: usize) -> String {
    let mail = server.mail(count);
    assert_eq!(mail.len(), count, "{mail:?}");
    crate::common::code_in(mail.last().unwrap()).expect("a code mail with six digits")
}

fn check_code(server: &Server, flow: &Value, code: &str) -> Response {
    // As Ory Elements sends it: the address empty beside the code.
    submit(
        server,
        flow,
        json!({"method": "code", "email": "", "code": code}),
    )
}

fn whoami(server: &Server, token: &str) -> Response {
    client()
        .get(server.url("/sessions/whoami"))
        .header("X-Session-Token", token)
        .send()
        .unwrap()
}

#[test]
fn an_api_flow_ends_as_kratos_does_by_default_with_a_redirect_to_the_settings_ui() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    let flow = api_flow(&server);
    assert_eq!(
        (flow["type"].as_str(), flow["state"].as_str()),
        (Some("api"), Some("choose_method"))
    );
    assert_eq!(flow["active"], "code");
    let sent = send_code(&server, &flow, "ann@example.com");
    assert_eq!(sent["state"], "sent_email");
    assert_eq!(message_ids(&sent), [1060003]);
    let ended = check_code(&server, &flow, &mailed_code(&server, 1));
    assert_eq!(ended.status(), 422);
    let body: Value = ended.json().unwrap();
    assert_eq!(body["error"]["id"], "browser_location_change_required");
    let to = body["redirect_browser_to"].as_str().unwrap();
    assert!(
        to.starts_with(&server.url("/self-service/recovery/password?flow=")),
        "{to}"
    );
    // The flow passed its challenge: it takes nothing more.
    let again: Value = submit(&server, &flow, json!({"method": "code", "code": "123456"}))
        .json()
        .unwrap();
    assert_eq!(message_ids(&again), [4060001]);
    assert_ne!(again["id"], flow["id"], "a new flow");
}

#[test]
fn with_continue_with_a_native_app_gets_its_session_token_and_sets_the_password_once() {
    let server = Server::start_with(&[CONTINUE_WITH]);
    let ann = server.identity(Some("ann@example.com"));
    let flow = api_flow(&server);
    send_code(&server, &flow, "ann@example.com");
    let ended = check_code(&server, &flow, &mailed_code(&server, 1));
    assert_eq!(ended.status(), 200);
    let passed: Value = ended.json().unwrap();
    assert_eq!(passed["state"], "passed_challenge");
    let actions = passed["continue_with"].as_array().unwrap();
    assert_eq!(actions[0]["action"], "set_ory_session_token");
    assert_eq!(actions[1]["action"], "show_settings_ui");
    let token = actions[0]["ory_session_token"].as_str().unwrap();
    let settings_id = actions[1]["flow"]["id"].as_str().unwrap();

    let session: Value = whoami(&server, token).json().unwrap();
    assert_eq!(session["identity"]["id"], ann["id"]);
    assert_eq!(
        session["authentication_methods"][0]["method"],
        "code_recovery"
    );
    assert_eq!(session["authenticator_assurance_level"], "aal1");

    let settings: Value = client()
        .get(server.url(&format!("/self-service/settings/flows?id={settings_id}")))
        .header("X-Session-Token", token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(settings["state"], "show_form");
    assert_eq!(message_ids(&settings), [1060001]);
    let save = |password: &str| {
        client()
            .post(server.url(&format!("/self-service/settings?flow={settings_id}")))
            .header("X-Session-Token", token)
            .json(&json!({"method": "password", "password": password}))
            .send()
            .unwrap()
    };
    let short = save("short");
    assert_eq!(short.status(), 400);
    let refused: Value = short.json().unwrap();
    let password = &refused["ui"]["nodes"][1];
    assert_eq!(password["attributes"]["name"], "password");
    assert_eq!(password["messages"][0]["id"], 4000005);
    let saved = save(NEW_PASSWORD);
    assert_eq!(saved.status(), 200);
    let saved: Value = saved.json().unwrap();
    assert_eq!(saved["state"], "success");
    assert_eq!(message_ids(&saved), [1050001]);
    // The session ended with the password.
    assert_eq!(whoami(&server, token).status(), 401);
    assert_eq!(save(NEW_PASSWORD).status(), 401);
    let notice = server.mail(2);
    assert!(notice[1].contains("password"), "{}", notice[1]);
}

/// A flow with what differs between any two flows blanked.
fn shape(flow: &Value) -> Value {
    let mut flow = flow.clone();
    for key in ["id", "issued_at", "expires_at", "request_url"] {
        flow[key] = Value::Null;
    }
    flow["ui"]["action"] = Value::Null;
    flow
}

#[test]
fn known_and_unknown_addresses_get_the_same_flow_state_and_message() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    let known = send_code(&server, &api_flow(&server), "ann@example.com");
    let unknown = send_code(&server, &api_flow(&server), "nobody@example.com");
    let mut unknown_shape = shape(&unknown);
    // Only the address typed differs (it is the re-send button's value).
    unknown_shape["ui"]["nodes"][4]["attributes"]["value"] = json!("ann@example.com");
    assert_eq!(shape(&known), unknown_shape);
    assert_eq!(server.mail(1).len(), 1, "only the known address is mailed");
}

#[test]
fn wrong_codes_answer_4060006_and_the_fifth_starts_a_new_flow_with_4000001_for_any_address() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    for email in ["ann@example.com", "nobody@example.com"] {
        let flow = api_flow(&server);
        send_code(&server, &flow, email);
        for _ in 0..4 {
            let wrong = check_code(&server, &flow, "000000");
            assert_eq!(wrong.status(), 200);
            let wrong: Value = wrong.json().unwrap();
            assert_eq!(
                (wrong["id"].clone(), message_ids(&wrong)),
                (flow["id"].clone(), vec![4060006])
            );
        }
        let fifth: Value = check_code(&server, &flow, "000000").json().unwrap();
        assert_ne!(fifth["id"], flow["id"], "{email}");
        assert_eq!(fifth["state"], "choose_method");
        assert_eq!(
            (fifth["type"].as_str(), fifth["request_url"].as_str()),
            (
                Some("api"),
                Some(server.url("/self-service/recovery/api").as_str())
            )
        );
        assert_eq!(message_ids(&fifth), [4000001]);
    }
}

#[test]
fn a_missing_address_is_400_with_4000002_on_the_address_node() {
    let server = Server::start();
    let flow = api_flow(&server);
    let missing = submit(&server, &flow, json!({"method": "code"}));
    assert_eq!(missing.status(), 400);
    let flow: Value = missing.json().unwrap();
    let email = &flow["ui"]["nodes"][1];
    assert_eq!(email["attributes"]["name"], "email");
    assert_eq!(email["messages"][0]["id"], 4000002);
}

#[test]
fn a_browser_flow_is_read_and_moved_only_with_its_csrf_cookie_and_token() {
    let server = Server::start();
    let started = client()
        .get(server.url("/self-service/recovery/browser"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(started.status(), 200);
    let cookie = started.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let flow: Value = started.json().unwrap();
    let id = flow["id"].as_str().unwrap();
    let csrf = flow["ui"]["nodes"][0]["attributes"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(flow["ui"]["nodes"][0]["attributes"]["name"], "csrf_token");
    assert!(!csrf.is_empty());

    let read = |cookie: Option<&str>| {
        let mut request =
            client().get(server.url(&format!("/self-service/recovery/flows?id={id}")));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send().unwrap()
    };
    let forged = read(None);
    assert_eq!(forged.status(), 403);
    let body: Value = forged.json().unwrap();
    assert_eq!(body["error"]["id"], "security_csrf_violation");
    assert_eq!(read(Some(&cookie)).status(), 200);

    let post = |token: &str| {
        client()
            .post(server.url(&format!("/self-service/recovery?flow={id}")))
            .header("Cookie", &cookie)
            .json(&json!({"method": "code", "email": "ann@example.com", "csrf_token": token}))
            .send()
            .unwrap()
    };
    assert_eq!(post("").status(), 403);
    let sent = post(&csrf);
    assert_eq!(sent.status(), 200);
    let sent: Value = sent.json().unwrap();
    assert_eq!(sent["state"], "sent_email");
}

#[test]
fn a_browser_that_asks_for_a_page_is_sent_to_the_recovery_ui() {
    let server = Server::start();
    let started = client()
        .get(server.url("/self-service/recovery/browser"))
        .send()
        .unwrap();
    assert_eq!(started.status(), 303);
    let location = started.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&server.url("/self-service/recovery?flow=")),
        "{location}"
    );
}

#[test]
fn a_return_to_off_the_allow_list_is_refused_and_one_on_it_is_kept() {
    let server = Server::start();
    let refused = client()
        .get(server.url("/self-service/recovery/api?return_to=https://evil.example/"))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["id"], "self_service_flow_return_to_forbidden");
    let kept: Value = client()
        .get(server.url(&format!(
            "/self-service/recovery/api?return_to={RETURN_URL}"
        )))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(kept["return_to"], RETURN_URL);
}

#[test]
fn an_unknown_flow_is_404_and_an_expired_one_410_with_a_new_flow_to_use() {
    let server = Server::start_with(&[("RECLAIM_FLOW_LIFESPAN", "1s")]);
    let missing = client()
        .get(server.url("/self-service/recovery/flows?id=5f0a8c1e-0000-4000-8000-000000000000"))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    let flow = api_flow(&server);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let expired = submit(
        &server,
        &flow,
        json!({"method": "code", "email": "ann@example.com"}),
    );
    assert_eq!(expired.status(), 410);
    let body: Value = expired.json().unwrap();
    assert_eq!(body["error"]["id"], "self_service_flow_expired");
    let fresh: Value = client()
        .get(server.url(&format!(
            "/self-service/recovery/flows?id={}",
            body["use_flow_id"].as_str().unwrap()
        )))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(message_ids(&fresh), [4060005]);
}

#[test]
fn thirty_two_parallel_submissions_of_the_right_code_open_one_session() {
    let server = Server::start_with(&[CONTINUE_WITH]);
    server.identity(Some("ann@example.com"));
    let flow = api_flow(&server);
    send_code(&server, &flow, "ann@example.com");
    let code = mailed_code(&server, 1);
    let start = Barrier::new(32);
    let sessions = std::thread::scope(|s| {
        let racers: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let answer: Value = check_code(&server, &flow, &code).json().unwrap();
                    answer["continue_with"][0]["ory_session_token"]
                        .as_str()
                        .map(str::to_string)
                })
            })
            .collect();
        racers
            .into_iter()
            .filter_map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(whoami(&server, &sessions[0]).status(), 200);
}

#[test]
fn a_recovery_that_ends_in_the_platform_goes_there_with_its_assertion_and_no_session() {
    let handoff = "https://platform.example.test/recovered";
    let server = Server::start_with(&[
        ("RECLAIM_COMPLETION", "handoff"),
        ("RECLAIM_HANDOFF_URL", handoff),
        CONTINUE_WITH,
    ]);
    server.identity(Some("ann@example.com"));
    let flow = api_flow(&server);
    send_code(&server, &flow, "ann@example.com");
    let ended: Value = check_code(&server, &flow, &mailed_code(&server, 1))
        .json()
        .unwrap();
    let actions = ended["continue_with"].as_array().unwrap();
    assert_eq!(
        actions.len(),
        1,
        "no session token, no settings: {actions:?}"
    );
    assert_eq!(actions[0]["action"], "redirect_browser_to");
    let to = actions[0]["redirect_browser_to"].as_str().unwrap();
    assert!(
        to.starts_with(&format!("{handoff}?recovery_assertion=")),
        "{to}"
    );
}

#[test]
fn whoami_without_a_session_is_401_in_kratos_shape() {
    let server = Server::start();
    let none = client().get(server.url("/sessions/whoami")).send().unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().unwrap();
    assert_eq!(body["error"]["id"], "session_inactive");
    assert_eq!(whoami(&server, "not-a-token").status(), 401);
}

/// A browser's cookies, as plain HTTP keeps them: name to value.
#[derive(Default)]
struct Jar(std::collections::BTreeMap<String, String>);

impl Jar {
    fn keep(&mut self, response: &Response) {
        for cookie in response.headers().get_all("set-cookie") {
            let pair = cookie.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.into(), value.into());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&mut self, url: &str) -> Response {
        let response = client()
            .get(url)
            .header("Cookie", self.header())
            .send()
            .unwrap();
        self.keep(&response);
        response
    }

    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let response = client()
            .post(url)
            .header("Cookie", self.header())
            .form(form)
            .send()
            .unwrap();
        self.keep(&response);
        response
    }
}

fn location(response: &Response) -> String {
    assert_eq!(response.status(), 303, "{:?}", response.headers());
    response.headers()["location"].to_str().unwrap().to_string()
}

#[test]
fn the_pages_draw_a_browser_flow_whose_form_posts_lead_to_a_new_password() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    let mut browser = Jar::default();
    let ui = location(&browser.get(&server.url("/self-service/recovery/browser")));
    assert!(
        ui.starts_with(&server.url("/self-service/recovery?flow=")),
        "{ui}"
    );
    // The form posts to the flow's `ui.action`, the page's own address.
    let action = ui.clone();
    let page = browser.get(&ui).text().unwrap().replace("&#x2f;", "/");
    assert!(page.contains(&format!("action=\"{action}\"")), "{page}");
    assert!(page.contains("name=\"email\""), "{page}");
    let csrf = csrf_token_in(&page).expect("a CSRF token");

    let sent = browser.post(
        &action,
        &[
            ("csrf_token", &csrf),
            ("email", "ann@example.com"),
            ("method", "code"),
        ],
    );
    assert_eq!(location(&sent), ui, "back to the same flow's page");
    let page = browser.get(&ui).text().unwrap();
    assert!(page.contains("data-message-id=\"1060003\""), "{page}");
    assert!(page.contains("name=\"code\""), "{page}");

    // The form names `method` twice, as Kratos' own UI posts it.
    let code = mailed_code(&server, 1);
    let ended = browser.post(
        &action,
        &[
            ("csrf_token", &csrf),
            ("code", &code),
            ("method", "code"),
            ("method", "code"),
        ],
    );
    let settings = location(&ended);
    assert!(
        settings.starts_with(&server.url("/self-service/recovery/password?flow=")),
        "{settings}"
    );
    let session: Value = browser.get(&server.url("/sessions/whoami")).json().unwrap();
    assert_eq!(
        session["authentication_methods"][0]["method"],
        "code_recovery"
    );

    let form = browser.get(&settings).text().unwrap();
    let csrf = csrf_token_in(&form).expect("the password form");
    let done = browser.post(
        &server.url("/self-service/recovery/password"),
        &[
            ("csrf_token", &csrf),
            ("password", NEW_PASSWORD),
            ("password_confirm", NEW_PASSWORD),
        ],
    );
    assert_eq!(done.status(), 200);
    let after = browser.get(&server.url("/sessions/whoami"));
    assert_eq!(after.status(), 401, "the session ended with the password");
}

#[test]
fn an_spa_on_an_allowed_origin_may_call_the_flow_api_with_cookies_and_no_other_may() {
    let spa = "http://127.0.0.1:5173";
    let server = Server::start_with(&[("RECLAIM_CORS_ALLOWED_ORIGINS", spa)]);
    let preflight = |origin: &str| {
        client()
            .request(
                reqwest::Method::OPTIONS,
                server.url("/self-service/recovery?flow=x"),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
            .unwrap()
    };
    let allowed = preflight(spa);
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], spa);
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let other = preflight("https://evil.example");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // The admin API is not the flow API: no CORS there.
    let admin = client()
        .request(reqwest::Method::OPTIONS, server.url("/admin/recovery/link"))
        .header("Origin", spa)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .unwrap();
    assert!(admin.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn the_link_method_mails_a_link_whose_confirmation_page_leads_to_the_settings_flow() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    let flow = api_flow(&server);
    let sent = submit(
        &server,
        &flow,
        json!({"method": "link", "email": "ann@example.com"}),
    );
    assert_eq!(sent.status(), 200);
    let sent: Value = sent.json().unwrap();
    assert_eq!(
        (sent["state"].as_str(), sent["active"].as_str()),
        (Some("sent_email"), Some("link"))
    );
    assert_eq!(message_ids(&sent), [1060002]);

    let mail = server.mail(1);
    let link = crate::common::link_in(&mail[0], &server.base).expect("a link");
    let mut browser = Jar::default();
    // Opening the link (a mail scanner may, too) consumes nothing.
    for _ in 0..2 {
        let page = browser.get(&link);
        assert_eq!(page.status(), 200);
    }
    let page = browser.get(&link).text().unwrap();
    let csrf = csrf_token_in(&page).expect("the confirmation form");
    let token = crate::common::token_of(&link);
    let confirmed = browser.post(
        &server.url("/self-service/recovery/confirm"),
        &[("csrf_token", &csrf), ("token", &token)],
    );
    let settings = location(&confirmed);
    assert!(
        settings.starts_with(&server.url("/self-service/recovery/password?flow=")),
        "{settings}"
    );
    let settings_id = settings.split("flow=").nth(1).unwrap();
    let flow: Value = client()
        .get(server.url(&format!("/self-service/settings/flows?id={settings_id}")))
        .header("Cookie", browser.header())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(message_ids(&flow), [1060001]);
    let session: Value = browser.get(&server.url("/sessions/whoami")).json().unwrap();
    assert_eq!(
        session["authentication_methods"][0]["method"],
        "link_recovery"
    );
}

#[test]
fn a_client_starts_flows_up_to_its_allowance_and_is_then_told_when_to_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reclaim.toml");
    std::fs::write(
        &config,
        "[rate_limit]\nflows_per_client = 3\nwindow = \"1h\"\n",
    )
    .unwrap();
    let server = Server::start_with(&[("RECLAIM_CONFIG", &config.display().to_string())]);
    for _ in 0..3 {
        api_flow(&server);
    }
    let api = client()
        .get(server.url("/self-service/recovery/api"))
        .send()
        .unwrap();
    assert_eq!(api.status(), 429);
    assert!(api.headers().contains_key("retry-after"));
    let body: Value = api.json().unwrap();
    assert_eq!(body["error"]["code"], 429, "{body}");
    // A browser is told on a page; the pages' own request form, which
    // keeps nothing until it sends, still opens.
    let browser = client()
        .get(server.url("/self-service/recovery/browser"))
        .send()
        .unwrap();
    assert_eq!(browser.status(), 429);
    assert!(
        browser
            .text()
            .unwrap()
            .contains("Too many account recovery attempts")
    );
    let form = client()
        .get(server.url("/self-service/recovery"))
        .send()
        .unwrap();
    assert_eq!(form.status(), 200);
}
