//! Three `reclaim serve` processes on one PostgreSQL database: exactly-once
//! redemption, exact attempt limits, shared rate limits and exactly-once
//! mail, whichever replica a request reaches.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::postgres;
use crate::common::{
    ADMIN_TOKEN, FormToken, Server, SmtpSink, admin_link, client, header, password_form, redeem,
    token_of,
};

const SECRETS: &str = "replica-secret-0123456789abcdef0123456789";

/// Three replicas sharing a fresh database and the hashing secrets; each
/// has its own port and data directory.
fn replicas(extra: &[(&str, &str)]) -> Vec<Server> {
    replicas_on(&postgres::server().fresh_database(), 3, extra)
}

/// `count` replicas of the database at `url`, sharing the hashing secrets.
fn replicas_on(url: &str, count: usize, extra: &[(&str, &str)]) -> Vec<Server> {
    (0..count)
        .map(|_| {
            let mut env = vec![("RECLAIM_DATABASE_URL", url), ("RECLAIM_SECRETS", SECRETS)];
            env.extend_from_slice(extra);
            Server::start_with(&env)
        })
        .collect()
}

/// A PostgreSQL server of the test's own, which it may stop or freeze,
/// and `count` replicas on a database of it.
fn replicas_of_own_server(count: usize) -> (postgres::PgServer, Vec<Server>) {
    let database = postgres::PgServer::start();
    let replicas = replicas_on(&database.fresh_database(), count, &[]);
    (database, replicas)
}

#[test]
fn a_link_is_redeemed_once_by_concurrent_requests_spread_over_replicas() {
    let replicas = replicas(&[]);
    let ann = replicas[0].identity(Some("ann@example.com"));
    let forms: Vec<FormToken> = replicas.iter().map(FormToken::fetch).collect();
    for round in 0..200 {
        let link = crate::common::admin_link(&replicas[round % 3], &ann);
        let token = token_of(&link);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..32)
                .map(|i| {
                    let (replica, form, token) = (&replicas[i % 3], &forms[i % 3], &token);
                    scope.spawn(move || {
                        form.post(
                            replica,
                            "/self-service/recovery/confirm",
                            &[("token", token)],
                        )
                        .status()
                        .as_u16()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won = statuses.iter().filter(|s| **s == 303).count();
        assert_eq!(won, 1, "round {round}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 303 || *s == 410),
            "round {round}: the losers are told the link was used: {statuses:?}"
        );
    }
}

#[test]
fn two_links_of_one_identity_redeemed_at_once_on_two_replicas_give_one_winner_and_a_410() {
    // Each redemption revokes the identity's other credentials: without an
    // order, each holds its own link's row and waits for the other's, and
    // PostgreSQL breaks the deadlock after a second with a 500.
    let replicas = replicas(&[("RECLAIM_REVOKE_OLDER_LINKS", "false")]);
    let ann = replicas[0].identity(Some("ann@example.com"));
    let forms: Vec<FormToken> = replicas.iter().map(FormToken::fetch).collect();
    for round in 0..30 {
        let links = [
            crate::common::admin_link(&replicas[0], &ann),
            crate::common::admin_link(&replicas[1], &ann),
        ];
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|i| {
                    let (replica, form, token) = (&replicas[i], &forms[i], token_of(&links[i]));
                    scope.spawn(move || {
                        form.post(
                            replica,
                            "/self-service/recovery/confirm",
                            &[("token", &token)],
                        )
                        .status()
                        .as_u16()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [303, 410], "round {round}: {statuses:?}");
    }
}

#[test]
fn concurrent_wrong_codes_over_replicas_stop_exactly_at_the_limit() {
    let replicas = replicas(&[]);
    let ann = replicas[0].identity(Some("ann@example.com"));
    let created: Value = client()
        .post(replicas[1].url("/admin/recovery/code"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let code = created["recovery_code"].as_str().unwrap().to_string();
    let link = created["recovery_link"].as_str().unwrap();
    let flow = link
        .split("flow=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let forms: Vec<FormToken> = replicas.iter().map(FormToken::fetch).collect();
    let pages: Vec<String> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..24)
            .map(|i| {
                let (replica, form) = (&replicas[i % 3], &forms[i % 3]);
                scope.spawn(move || {
                    form.post(
                        replica,
                        "/self-service/recovery/code",
                        &[("flow", flow), ("code", wrong)],
                    )
                    .text()
                    .unwrap()
                })
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    // Each counted guess gets its own count: 1 to 4 leave attempts, the
    // fifth and every later one end the flow.
    let left = pages.iter().filter(|p| p.contains("left.")).count();
    assert_eq!(left, 4, "guesses told they had attempts left");
    let after = forms[2].post(
        &replicas[2],
        "/self-service/recovery/code",
        &[("flow", flow), ("code", &code)],
    );
    assert_ne!(after.status(), 303, "the right code no longer works");
}

#[test]
fn concurrent_wrong_codes_over_three_flows_and_replicas_stop_at_the_identitys_cap() {
    let replicas = replicas(&[("RECLAIM_REVOKE_OLDER_LINKS", "false")]);
    let ann = replicas[0].identity(Some("ann@example.com"));
    // Three live codes: fifteen guesses by the flows' own limits.
    let flows: Vec<(String, String)> = (0..3)
        .map(|i| {
            let created: Value = client()
                .post(replicas[i].url("/admin/recovery/code"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({ "identity_id": ann["id"] }))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let link = created["recovery_link"].as_str().unwrap();
            let flow = link.split("flow=").nth(1).unwrap().to_string();
            (flow, created["recovery_code"].as_str().unwrap().to_string())
        })
        .collect();
    let wrong = |code: &str| format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let forms: Vec<FormToken> = replicas.iter().map(FormToken::fetch).collect();
    let pages: Vec<String> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..15)
            .map(|i| {
                let (replica, form) = (&replicas[i % 3], &forms[i % 3]);
                let (flow, code) = &flows[i % 3];
                let guess = wrong(code);
                scope.spawn(move || {
                    form.post(
                        replica,
                        "/self-service/recovery/code",
                        &[("flow", flow.as_str()), ("code", guess.as_str())],
                    )
                    .text()
                    .unwrap()
                })
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let capped = pages
        .iter()
        .filter(|p| p.contains("Too many wrong codes were submitted for this account"))
        .count();
    // The cap is ten: of fifteen guesses, at most ten were judged (the tenth
    // is told the cap is reached), and the five after it never were.
    assert!(capped >= 5, "{capped} guesses were stopped by the cap");
    let mut db = ::postgres::Client::connect(
        &replicas[0].env_value("RECLAIM_DATABASE_URL"),
        ::postgres::NoTls,
    )
    .unwrap();
    let counted: i64 = db
        .query_one(
            "SELECT sum(failed_attempts)::BIGINT FROM credentials WHERE identity_id = $1",
            &[&ann["id"].as_str().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(counted, 10, "exactly the cap was counted, across replicas");
    for (i, (flow, code)) in flows.iter().enumerate() {
        let right = forms[i].post(
            &replicas[i],
            "/self-service/recovery/code",
            &[("flow", flow), ("code", code)],
        );
        assert_ne!(right.status(), 303, "flow {i}: the right code past the cap");
    }
}

#[test]
fn the_per_address_limit_holds_across_replicas() {
    let replicas = replicas(&[]);
    let forms: Vec<FormToken> = replicas.iter().map(FormToken::fetch).collect();
    let statuses: Vec<u16> = (0..12)
        .map(|i| {
            forms[i % 3]
                .post(
                    &replicas[i % 3],
                    "/self-service/recovery",
                    &[("email", "someone@example.com")],
                )
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
}

#[test]
fn every_message_is_delivered_once_with_a_courier_in_every_replica() {
    let sink = SmtpSink::running();
    let smtp = sink.url();
    let replicas = replicas(&[("RECLAIM_SMTP_URL", &smtp)]);
    let people: Vec<Value> = (0..30)
        .map(|i| replicas[0].identity(Some(&format!("person{i}@example.com"))))
        .collect();
    std::thread::scope(|scope| {
        for (i, person) in people.iter().enumerate() {
            let replica = &replicas[i % 3];
            scope.spawn(move || {
                let response = client()
                    .post(replica.url(&format!(
                        "/api/v3/core/users/{}/recovery_email/?email_stage=default",
                        person["pk"]
                    )))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .unwrap();
                assert_eq!(response.status(), 204);
            });
        }
    });
    let messages = sink.wait_for(30, 20);
    // Give a duplicate time to arrive before counting.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let messages = if sink.messages().len() > messages.len() {
        sink.messages()
    } else {
        messages
    };
    assert_eq!(messages.len(), 30, "each message once");
    let ids: HashSet<&str> = messages
        .iter()
        .map(|m| header(m, "Message-ID").expect("a Message-ID"))
        .collect();
    assert_eq!(ids.len(), 30);
}

#[test]
fn every_cli_command_works_against_postgres() {
    let url = postgres::server().fresh_database();
    let env = [
        ("RECLAIM_DATABASE_URL", url.as_str()),
        ("RECLAIM_SECRETS", SECRETS),
    ];
    let (here, there) = (Server::offline(&env), Server::offline(&env));
    let ann = here.identity(Some("ann@example.com"));
    let listed = there.cli_json(&["identity", "list"]);
    assert_eq!(
        listed[0]["id"], ann["id"],
        "another data directory, the same database"
    );
    let id = ann["id"].as_str().unwrap();
    let link = here.cli_json(&["link", "create", "--identity", id]);
    let redeemed = there.cli_json(&["redeem", "--link", link["recovery_link"].as_str().unwrap()]);
    assert_eq!(redeemed["identity_id"], ann["id"]);
    let again = here.cli(&["redeem", "--link", link["recovery_link"].as_str().unwrap()]);
    assert!(!again.status.success(), "single use through the CLI too");
    let code = here.cli_json(&["code", "create", "--identity", id]);
    let flow = code["flow_id"].as_str().unwrap();
    let wrong = if code["recovery_code"] == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert!(
        !there
            .cli(&["redeem", "--flow", flow, "--code", wrong])
            .status
            .success()
    );
    let by_code = there.cli_json(&[
        "redeem",
        "--flow",
        flow,
        "--code",
        code["recovery_code"].as_str().unwrap(),
    ]);
    assert_eq!(by_code["identity_id"], ann["id"]);
    here.cli_json(&["link", "create", "--identity", id]);
    let revoked = there.cli_json(&["revoke", "--identity", id]);
    assert_eq!(revoked["revoked"], 1);
    // No SMTP relay: mail goes to DATA/outbox of whichever process
    // delivers it.
    here.cli_json(&["email", "send", "--identity", id]);
    here.cli_json(&["request", "--email", "ann@example.com"]);
    let status = there.cli_json(&["courier", "status"]);
    assert_eq!(status["sent"], 2, "{status}");
    let listed = there.cli_json(&["courier", "list", "--status", "sent"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let flushed = there.cli_json(&["courier", "flush"]);
    assert_eq!(flushed["sent"], 0, "{flushed}");
}

#[test]
fn a_database_restart_under_load_fails_cleanly_and_loses_nothing_acknowledged() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let (database, mut replicas) = replicas_of_own_server(1);
    let replica = replicas.remove(0);
    let ann = replica.identity(Some("ann@example.com"));
    let stop = AtomicBool::new(false);
    let create = || {
        let response = client()
            .post(replica.url("/admin/recovery/link"))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(Duration::from_secs(30))
            .json(&json!({ "identity_id": ann["id"] }))
            .send()
            .expect("every request is answered");
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap())
    };
    let (answers, ready_while_down) = std::thread::scope(|scope| {
        let load: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        answers.push(create());
                    }
                    answers
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        database.stop();
        std::thread::sleep(Duration::from_millis(500));
        let ready = client()
            .get(replica.url("/health/ready"))
            .send()
            .unwrap()
            .status();
        std::thread::sleep(Duration::from_millis(1500));
        database.resume();
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let answers: Vec<(u16, Value)> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
        (answers, ready)
    });
    assert_eq!(ready_while_down, 503, "/health/ready reports the database");
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, b)| b)
        .collect();
    assert!(
        !refused.is_empty(),
        "requests failed while the database was down"
    );
    for body in &refused {
        assert_eq!(body["error"]["code"], 503, "{body}");
        assert_eq!(body["error"]["status"], "Service Unavailable");
        assert!(body["error"]["request"].is_string() && body["error"]["message"].is_string());
    }
    let flows: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| {
            let link = b["recovery_link"].as_str().unwrap();
            link.split("flow=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        flows.len() + refused.len(),
        answers.len(),
        "only 200 or 503"
    );
    // Recovered without a restart of ours, and every acknowledged link is there.
    assert_eq!(create().0, 200);
    let url = replica.env_value("RECLAIM_DATABASE_URL");
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM credentials WHERE flow_id = ANY($1)",
            &[&flows],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        stored as usize,
        flows.len(),
        "no acknowledged link was lost"
    );
}

#[test]
fn a_database_restart_goes_unnoticed_once_the_database_answers_again() {
    let (database, replicas) = replicas_of_own_server(3);
    let ann = replicas[0].identity(Some("ann@example.com"));
    let statuses = |replica: &Server, requests: usize| -> Vec<u16> {
        (0..requests)
            .map(|_| crate::common::request_link(replica, &ann).status().as_u16())
            .collect()
    };
    // Every connection of every replica's pool opened, and then cut off by
    // the restart.
    std::thread::scope(|scope| {
        for replica in &replicas {
            for _ in 0..24 {
                scope.spawn(|| assert!(statuses(replica, 10).iter().all(|s| *s == 200)));
            }
        }
    });
    database.stop();
    database.resume();
    for replica in &replicas {
        let ready = client().get(replica.url("/health/ready")).send().unwrap();
        assert_eq!(ready.status(), 200, "ready as soon as the database answers");
    }
    // A link page opened on one replica, redeemed on another.
    let form = FormToken::fetch(&replicas[1]);
    let link = crate::common::admin_link(&replicas[0], &ann);
    crate::common::redeem(&replicas[2], &form, &link);
    for replica in &replicas {
        let after = statuses(replica, 40);
        assert!(
            after.iter().all(|s| *s == 200),
            "no request after the restart fails: {after:?}"
        );
    }
    // And concurrently, as a restart under load meets them.
    database.stop();
    database.resume();
    std::thread::scope(|scope| {
        for replica in &replicas {
            for _ in 0..24 {
                scope.spawn(|| {
                    let after = statuses(replica, 5);
                    assert!(after.iter().all(|s| *s == 200), "{after:?}");
                });
            }
        }
    });
}

#[test]
fn a_database_that_stops_answering_gets_a_503_in_bounded_time_and_service_resumes_after() {
    use std::time::{Duration, Instant};

    let (database, mut replicas) = replicas_of_own_server(1);
    let replica = replicas.remove(0);
    let ann = replica.identity(Some("ann@example.com"));
    let create = || {
        client()
            .post(replica.url("/admin/recovery/link"))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(Duration::from_secs(120))
            .json(&json!({ "identity_id": ann["id"] }))
            .send()
            .expect("answered")
            .status()
            .as_u16()
    };
    assert_eq!(create(), 200);
    // No reset, no close: the host froze (or vanished in a failover).
    database.freeze();
    let started = Instant::now();
    let frozen = create();
    let waited = started.elapsed();
    database.thaw();
    assert_eq!(
        frozen, 503,
        "a database that does not answer is out of reach"
    );
    // A bound, not a speed: without one the request waited forever.
    assert!(
        waited < Duration::from_secs(60),
        "answered after {waited:?}"
    );
    for _ in 0..20 {
        assert_eq!(create(), 200, "served again once the database answers");
    }
}

#[test]
fn tls_to_postgres_is_verified_against_the_configured_ca() {
    let (database, ca) = postgres::PgServer::start_tls();
    let url = database.fresh_database();
    let ca = ca.display().to_string();
    let over_tls = format!("{url}?sslmode=require");
    let with = |url: &str, ca: Option<&str>| {
        let mut env = vec![("RECLAIM_DATABASE_URL", url), ("RECLAIM_SECRETS", SECRETS)];
        env.extend(ca.map(|ca| ("RECLAIM_DATABASE_CA", ca)));
        Server::offline(&env)
    };
    // The server takes only TLS for this database: a plain client is refused.
    let plain = with(&url, None).cli(&["identity", "list"]);
    let refused = String::from_utf8_lossy(&plain.stderr);
    assert!(refused.contains("no encryption"), "{refused}");
    let trusted = with(&over_tls, Some(&ca));
    let ann = trusted.identity(Some("ann@example.com"));
    assert_eq!(trusted.cli_json(&["identity", "list"])[0]["id"], ann["id"]);
    // Without the CA the certificate is not trusted: TLS here is verified,
    // not merely encrypted.
    let unverified = with(&over_tls, None).cli(&["identity", "list"]);
    assert!(!unverified.status.success());
    let error = String::from_utf8_lossy(&unverified.stderr);
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[test]
fn a_hand_off_assertion_is_redeemed_once_by_concurrent_requests_spread_over_replicas() {
    let replicas = replicas(&[
        ("RECLAIM_COMPLETION", "handoff"),
        (
            "RECLAIM_HANDOFF_URL",
            "https://platform.example.test/recovered",
        ),
    ]);
    let ann = replicas[0].identity(Some("ann@example.com"));
    for round in 0..10 {
        let link = crate::common::admin_link(&replicas[round % 3], &ann);
        let redeemed = FormToken::fetch(&replicas[(round + 1) % 3]).post(
            &replicas[(round + 1) % 3],
            "/self-service/recovery/confirm",
            &[("token", &token_of(&link))],
        );
        assert_eq!(redeemed.status(), 303);
        let location = redeemed.headers()["location"].to_str().unwrap().to_string();
        let assertion = location
            .split("recovery_assertion=")
            .nth(1)
            .unwrap()
            .to_string();
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..32)
                .map(|i| {
                    let (replica, assertion) = (&replicas[i % 3], &assertion);
                    scope.spawn(move || {
                        client()
                            .post(replica.url("/admin/recovery/assertions"))
                            .bearer_auth(ADMIN_TOKEN)
                            .json(&json!({ "assertion": assertion }))
                            .send()
                            .unwrap()
                            .status()
                            .as_u16()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 410),
            "{statuses:?}"
        );
    }
}

#[test]
fn every_event_is_delivered_once_with_a_webhook_courier_in_every_replica() {
    let receiver = crate::webhooks::Receiver::start("");
    let url = receiver.url("/hooks");
    let replicas = replicas(&[
        ("RECLAIM_WEBHOOK_URL", url.as_str()),
        ("RECLAIM_WEBHOOK_SECRETS", crate::webhooks::SECRET),
    ]);
    let ann = replicas[0].identity(Some("ann@example.com"));
    for i in 0..30 {
        crate::common::admin_link(&replicas[i % 3], &ann);
    }
    let links = |requests: &[Value]| -> Vec<String> {
        requests
            .iter()
            .filter(|r| crate::webhooks::body(r)["type"] == "recovery.link.created")
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    receiver.wait_for(|r| links(r).len() >= 30);
    // Time for a second delivery of any of them to show.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let requests = receiver.requests();
    let delivered = links(&requests);
    let distinct: HashSet<&String> = delivered.iter().collect();
    assert_eq!(distinct.len(), 30, "{requests:#?}");
    assert_eq!(
        delivered.len(),
        30,
        "each once, whichever replica's courier took it"
    );
    assert!(requests.iter().all(|r| r["verified"] == true));
}

#[test]
fn ending_sessions_by_an_id_in_another_uuid_form_ends_them_on_postgresql() {
    let replicas = replicas_on(&postgres::server().fresh_database(), 1, &[]);
    let server = &replicas[0];
    let ann = server.identity(Some("ann@example.com"));
    let form = FormToken::fetch(server);
    let cookie = redeem(server, &form, &admin_link(server, &ann));
    assert_eq!(password_form(server, &cookie), 200);
    let simple = ann["id"].as_str().unwrap().replace('-', "").to_uppercase();
    let ended = client()
        .delete(server.url(&format!("/admin/identities/{simple}/sessions")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(password_form(server, &cookie), 401, "the session ended");
}
