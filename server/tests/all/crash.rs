//! A crash of `reclaim serve` in the middle of concurrent writes: with
//! group commit many requests share one transaction, and not one of them
//! may be answered before that transaction is in the database.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ADMIN_TOKEN, Server};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const WRITERS: usize = 8;
const ACKNOWLEDGED_BEFORE_THE_CRASH: usize = 200;

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[test]
fn every_link_acknowledged_before_a_crash_works_after_the_restart() {
    // Each identity keeps all its links, so every one can be redeemed.
    let mut server = Server::start_with(&[("RECLAIM_REVOKE_OLDER_LINKS", "false")]);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    // Killed by the writer that receives the crash's answer, the moment it
    // arrives: the batch that answer belongs to must already be committed.
    let process = Arc::new(Mutex::new(Some(server.detach())));
    let identities: Vec<String> = (0..WRITERS)
        .map(|i| {
            server.identity(Some(&format!("writer{i}@example.test")))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let writers: Vec<_> = identities
        .into_iter()
        .map(|id| {
            let url = server.url("/admin/recovery/link");
            let acknowledged = Arc::clone(&acknowledged);
            let process = Arc::clone(&process);
            std::thread::spawn(move || {
                let client = client();
                let mut tokens = Vec::new();
                // Until the server is gone: a request it never answered in
                // full was not acknowledged.
                loop {
                    let response = client
                        .post(&url)
                        .bearer_auth(ADMIN_TOKEN)
                        .json(&json!({ "identity_id": id }))
                        .send();
                    let Ok(response) = response else { break };
                    assert_eq!(response.status(), StatusCode::OK);
                    let Ok(body) = response.json::<Value>() else {
                        break;
                    };
                    let link = body["recovery_link"].as_str().unwrap();
                    tokens.push(link.rsplit("token=").next().unwrap().to_string());
                    if acknowledged.fetch_add(1, Ordering::Relaxed) + 1
                        == ACKNOWLEDGED_BEFORE_THE_CRASH
                        && let Some(mut serve) = process.lock().unwrap().take()
                    {
                        serve.kill().unwrap();
                        serve.wait().unwrap();
                    }
                }
                tokens
            })
        })
        .collect();

    // The writers stop when the server is gone.
    let per_writer: Vec<Vec<String>> = writers
        .into_iter()
        .map(|writer| writer.join().unwrap())
        .collect();
    let writing = per_writer.iter().filter(|t| !t.is_empty()).count();
    let tokens: Vec<String> = per_writer.into_iter().flatten().collect();
    assert!(tokens.len() >= ACKNOWLEDGED_BEFORE_THE_CRASH);

    server.restart();
    // Redeeming one link revokes its identity's others (410 Gone): known
    // either way. A link the database never got is unknown (404).
    let client = client();
    let form = common::FormToken::fetch(&server);
    let mut redeemed = 0;
    let mut lost = Vec::new();
    for token in &tokens {
        let status = client
            .post(server.url("/self-service/recovery/confirm"))
            .header("cookie", &form.cookie)
            .form(&[("token", token.as_str()), ("csrf_token", &form.token)])
            .send()
            .unwrap()
            .status();
        match status {
            StatusCode::SEE_OTHER => redeemed += 1,
            StatusCode::GONE => {}
            other => lost.push((token, other)),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged links did not survive the crash: {lost:?}",
        lost.len(),
        tokens.len()
    );
    assert_eq!(redeemed, writing, "one link per identity redeems");
}
