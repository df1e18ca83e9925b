//! A person's whole journey in a real headless Chromium: an admin mails a
//! recovery link over HTTP, the test reads the `.eml`, the browser opens the
//! link, confirms, sets a new password, and the link is spent.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Server, link_in};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn browser() -> (Driver, Client) {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "install Debian's chromium and chromium-driver (scripts/test does)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let profile = tempfile::tempdir().unwrap().keep();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until the element shows `expected` (a click's navigation may still
/// be under way, and the old page's element go stale meanwhile).
async fn expect_text(client: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.ok(),
            Err(_) => None,
        };
        if seen.as_deref() == Some(expected) {
            return;
        }
        if Instant::now() > deadline {
            let page = client.source().await.unwrap_or_default();
            panic!("{css} never read {expected:?} (last: {seen:?}); the page was:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens a recovery link and presses the confirmation page's button.
async fn open_and_confirm(client: &Client, link: &str) {
    client.goto(link).await.unwrap();
    expect_text(client, "h1", "Reset your password").await;
    client
        .find(Locator::Id("confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_recovers_their_account_in_a_real_browser() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let id = ann["id"].as_str().unwrap().to_string();

    // The admin asks for a recovery email over HTTP (authentik's API).
    let status = reqwest::Client::new()
        .post(server.url(&format!(
            "/api/v3/core/users/{}/recovery_email/?email_stage=default",
            ann["pk"]
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let mail = tokio::task::block_in_place(|| server.mail(1))
        .pop()
        .expect("the mail arrives");
    let link = link_in(&mail, &server.base).expect("the mail carries the link");

    let (_driver, client) = browser().await;
    open_and_confirm(&client, &link).await;
    expect_text(&client, "h1", "Choose a new password").await;
    assert_eq!(
        client.current_url().await.unwrap().path(),
        "/self-service/recovery/password"
    );
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("a brand new passphrase")
        .await
        .unwrap();
    client
        .find(Locator::Id("password_confirm"))
        .await
        .unwrap()
        .send_keys("a brand new passphrase")
        .await
        .unwrap();
    client
        .find(Locator::Id("save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    expect_text(&client, "#done", "Your password was changed").await;
    if let Ok(dir) = std::env::var("RECLAIM_SCREENSHOTS") {
        std::fs::write(
            format!("{dir}/recovered.png"),
            client.screenshot().await.unwrap(),
        )
        .unwrap();
    }

    let check = tokio::task::block_in_place(|| {
        server.cli(&[
            "identity",
            "check-password",
            "--identity",
            &id,
            "--password",
            "a brand new passphrase",
        ])
    });
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The same link, opened again, says at once that it is spent.
    client.goto(&link).await.unwrap();
    expect_text(&client, "#problem", "This recovery link was already used").await;
    assert!(client.find(Locator::Id("request-new")).await.is_ok());
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_asks_for_a_link_on_the_pages_recovery_flow_in_a_real_browser() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    let (_driver, client) = browser().await;
    client
        .goto(&server.url("/self-service/recovery"))
        .await
        .unwrap();
    expect_text(&client, "h1", "Recover your account").await;
    client
        .find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys("ann@example.com")
        .await
        .unwrap();
    client
        .find(Locator::Css("button[name='method']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The answer to the post is the page of the flow it kept.
    expect_text(&client, "h1", "Check your email").await;
    expect_text(&client, "[data-message-id='1060002']", "An email containing a recovery link has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.").await;
    let mail = tokio::task::block_in_place(|| server.mail(1))
        .pop()
        .expect("the mail arrives");
    let link = link_in(&mail, &server.base).expect("the mail carries the link");
    open_and_confirm(&client, &link).await;
    expect_text(&client, "h1", "Choose a new password").await;
    client.close().await.unwrap();
}

/// The platform's end of a hand-off: an HTTP server of another origin
/// that answers every GET with a page showing the query it was sent.
fn platform_page() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // The rest of the head, unread, would reset the connection.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let target = request_line.split(' ').nth(1).unwrap_or("/");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let body = format!(
                "<!doctype html><title>Platform</title><h1>Platform</h1><p id=\"query\">{query}</p>"
            );
            let _ = write!(
                &stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handoff_is_followed_to_the_platforms_origin_in_a_real_browser() {
    let platform = platform_page();
    let handoff_url = format!("{platform}/recovered");
    let server = Server::start_with(&[
        ("RECLAIM_COMPLETION", "handoff"),
        ("RECLAIM_HANDOFF_URL", &handoff_url),
    ]);
    let ann = server.identity(Some("ann@example.com"));
    let link = tokio::task::block_in_place(|| common::admin_link(&server, &ann));

    let (_driver, client) = browser().await;
    open_and_confirm(&client, &link).await;
    // The form's POST is answered with a redirect to another origin, which
    // the pages' `form-action` must allow for the browser to follow it.
    expect_text(&client, "h1", "Platform").await;
    let landed = client.current_url().await.unwrap();
    assert_eq!(landed.path(), "/recovered");
    let assertion = landed
        .query_pairs()
        .find(|(k, _)| k == "recovery_assertion")
        .map(|(_, v)| v.into_owned())
        .expect("the platform got the assertion");
    let redeemed = reqwest::Client::new()
        .post(server.url("/admin/recovery/assertions"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "assertion": assertion }))
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), 200);
    client.close().await.unwrap();
}
