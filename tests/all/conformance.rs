//! The host-neutral scenarios of `tests/conformance/`, run through the Rust
//! host. The Node.js host runs the same files and must agree on each step.

use std::collections::HashMap;
use std::time::Duration;

use reclaim::settings::parse_secrets;
use reclaim::{Clock, EmailOptions, Error, IdentityRef, NewIdentity, Settings};
use reclaim_tests::{PUBLIC_URL, TestEnv, token_of};
use serde_json::Value;

/// What a step produced: the JSON shape the scenarios expect.
fn outcome<T>(result: Result<T, Error>, on_ok: impl FnOnce(T) -> Value) -> Value {
    match result {
        Ok(value) => {
            let mut ok = on_ok(value);
            ok["ok"] = Value::Bool(true);
            ok
        }
        Err(Error::Refused(e)) => serde_json::json!({ "error": e.kind.wit_name(), "code": e.code }),
        Err(e) => panic!("the host failed: {e:#}"),
    }
}

/// The scenario's settings; none for secrets the Rust host refuses to load
/// (shorter than 32 bytes), which other hosts hand to the component.
fn settings(spec: &Value, secrets: &[String]) -> Option<Settings> {
    let mut settings = Settings::new(PUBLIC_URL, parse_secrets(&secrets.join(",")).ok()?);
    // A tunable the scenario leaves out is left to the component's default.
    let seconds = |name: &str| spec[name].as_u64().map(Duration::from_secs);
    settings.default_lifespan = seconds("default_lifespan");
    settings.max_lifespan = seconds("max_lifespan");
    settings.revoke_older_links = spec["revoke_older_links"].as_bool();
    settings.max_code_attempts = spec["max_code_attempts"].as_u64().map(|n| n as u32);
    Some(settings)
}

fn run(path: &std::path::Path) {
    let scenario: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let env = TestEnv::new();
    env.clock
        .set(Duration::from_secs(scenario["clock"].as_u64().unwrap()));
    let mut secrets: Vec<String> =
        serde_json::from_value(scenario["settings"]["secrets"].clone()).unwrap();
    let first = secrets.clone();
    let mut ids: HashMap<String, reclaim::Identity> = HashMap::new();
    for (name, spec) in scenario["identities"].as_object().unwrap() {
        let identity = env.identity_with(NewIdentity {
            email: spec["email"].as_str().map(Into::into),
            display_name: Some(name.clone()),
            locale: spec["locale"].as_str().map(Into::into),
            active: spec["active"].as_bool().unwrap(),
            ..Default::default()
        });
        ids.insert(name.clone(), identity);
    }
    // Saved links, codes and flows by name.
    let mut saved: HashMap<String, (String, String)> = HashMap::new();
    for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
        let context = format!("{} step {i}: {step}", path.display());
        let op = step["op"].as_str().unwrap();
        let current = settings(&scenario["settings"], &secrets);
        let operation = !matches!(op, "set-secrets" | "advance" | "expect_mail");
        if current.is_none() && operation {
            // The Rust host refuses such settings when it loads them, before
            // any operation: to a caller, the same misconfiguration the
            // component reports to hosts that pass them on.
            assert_eq!(step["expect"]["error"], "misconfigured", "{context}");
            continue;
        }
        // Steps that are not operations never use it.
        let settings = current.unwrap_or_else(|| settings(&scenario["settings"], &first).unwrap());
        let reclaim = env.reclaim_with(settings);
        let who = || -> IdentityRef {
            if let Some(name) = step["identity"].as_str() {
                IdentityRef::Id(ids[name].id.clone())
            } else if let Some(id) = step["identity_id"].as_str() {
                IdentityRef::Id(id.to_string())
            } else {
                IdentityRef::Pk(step["identity_pk"].as_i64().unwrap())
            }
        };
        let expires_in = step["expires_in"].as_str();
        let now = env.clock.now_nanos();
        let lifespan = |expires_at: u64| Value::from((expires_at - now) / 1_000_000_000);
        let name_of = |identity_id: &str| {
            ids.iter()
                .find(|(_, i)| i.id == identity_id)
                .map(|(n, _)| n.clone())
                .unwrap()
        };
        let got = match op {
            "create-link" => outcome(
                reclaim.create_link(&who(), expires_in, None).wait(),
                |link| {
                    if let Some(name) = step["as"].as_str() {
                        saved.insert(name.into(), (token_of(&link.link), link.flow_id.clone()));
                    }
                    serde_json::json!({ "lifespan": lifespan(link.expires_at) })
                },
            ),
            "create-code" => outcome(
                reclaim.create_code(&who(), expires_in, None).wait(),
                |code| {
                    if let Some(name) = step["as"].as_str() {
                        saved.insert(name.into(), (code.code.clone(), code.flow_id.clone()));
                    }
                    serde_json::json!({ "lifespan": lifespan(code.expires_at) })
                },
            ),
            "send-recovery-email" => {
                let options = EmailOptions {
                    expires_in,
                    template: step["template"].as_str(),
                    from: step["sender"].as_str(),
                    ..Default::default()
                };
                outcome(
                    reclaim.send_recovery_email(&who(), &options).wait(),
                    |mailed| serde_json::json!({ "lifespan": lifespan(mailed.expires_at) }),
                )
            }
            "redeem-link" => {
                let token = match step["token_of"].as_str() {
                    Some(name) => saved[name].0.clone(),
                    None => step["token"].as_str().unwrap().to_string(),
                };
                outcome(
                    reclaim.redeem_link(&token).wait(),
                    |r| serde_json::json!({ "identity": name_of(&r.identity_id) }),
                )
            }
            "redeem-code" => {
                let (code, flow) = saved[step["code_of"].as_str().unwrap()].clone();
                let code = match (step["wrong"].as_bool(), step["code"].as_str()) {
                    (Some(true), _) => {
                        format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
                    }
                    (_, Some(literal)) => literal.to_string(),
                    _ => code,
                };
                let flow = step["flow"].as_str().map(str::to_string).unwrap_or(flow);
                outcome(
                    reclaim.redeem_code(&flow, &code).wait(),
                    |r| serde_json::json!({ "identity": name_of(&r.identity_id) }),
                )
            }
            "revoke" => outcome(
                reclaim.revoke(&who()).wait(),
                |n| serde_json::json!({ "revoked": n.credentials }),
            ),
            "advance" => {
                env.clock
                    .advance(Duration::from_secs(step["seconds"].as_u64().unwrap()));
                continue;
            }
            "set-secrets" => {
                secrets = serde_json::from_value(step["secrets"].clone()).unwrap();
                continue;
            }
            "expect_mail" => {
                assert_eq!(
                    env.count("SELECT count(*) FROM outbox"),
                    step["count"].as_i64().unwrap(),
                    "{context}"
                );
                if let Some(sender) = step["sender"].as_str() {
                    let from = format!("SELECT count(*) FROM outbox WHERE sender = '{sender}'");
                    assert_eq!(env.count(&from), 1, "{context}");
                }
                continue;
            }
            other => panic!("unknown op {other} in {context}"),
        };
        let expected = step["expect"].as_object().expect("an expectation");
        for (key, want) in expected {
            assert_eq!(&got[key], want, "{key} differs: got {got}\n{context}");
        }
    }
}

#[test]
fn every_conformance_scenario_passes_on_the_rust_host() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let files = reclaim_tests::scenarios::scenario_files(&dir);
    assert!(files.len() >= 6, "the scenarios are there");
    for file in files {
        run(&file);
    }
}
