//! What `serve` holds back so that no client starves the others: slow and
//! idle connections, declared and trickled bodies, and operations beyond the
//! in-flight cap. Every refusal is in the shape of the route's API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ADMIN_TOKEN, Launch, Server, client, request_link};

/// The Prometheus document.
fn metrics(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// Sends `head` (and no more) on a fresh connection.
fn connect(server: &Server, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Reads until the server closes the connection (or `within` passes):
/// what it sent, and whether it closed.
fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&received).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

/// The JSON body of a raw HTTP/1.1 response.
fn body_of(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// 300 clients that trickle header bytes, on a process allowed 256 open
/// files: a normal client is still served, and every slow connection is
/// closed once the header timeout has passed.
#[test]
fn slow_clients_cannot_keep_a_normal_client_out_and_are_closed() {
    let server = Server::launch(
        &[("RECLAIM_HEADER_TIMEOUT", "2s")],
        Launch {
            open_files: Some(256),
            ..Launch::default()
        },
    );
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| connect(&server, "GET /health/ready HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    // They keep sending, a header line at a time, never the blank line.
    let trickling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writers: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
    let keep = trickling.clone();
    let trickle = std::thread::spawn(move || {
        let mut writers = writers;
        while keep.load(std::sync::atomic::Ordering::Relaxed) {
            for w in &mut writers {
                let _ = w.write_all(b"X-Slow: 1\r\n");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });

    let ready = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(server.url("/health/ready"))
        .send()
        .expect("a normal client is served while 300 slow ones hold connections");
    assert_eq!(ready.status(), 200);

    // Every slow connection is closed: made room for, or timed out, though
    // its client never stopped sending.
    let started = Instant::now();
    for stream in &mut slow {
        let left = Duration::from_secs(20).saturating_sub(started.elapsed());
        let (_, closed) = read_to_close(stream, left.max(Duration::from_millis(1)));
        assert!(closed, "a trickling connection stayed open");
    }
    trickling.store(false, std::sync::atomic::Ordering::Relaxed);
    trickle.join().unwrap();
    assert_eq!(
        client()
            .get(server.url("/health/alive"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

/// A keep-alive connection that sends nothing after its answer is closed
/// after the header timeout, not held forever.
#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = Server::start_with(&[("RECLAIM_HEADER_TIMEOUT", "1s")]);
    let mut stream = connect(&server, "GET /health/alive HTTP/1.1\r\nHost: x\r\n\r\n");
    let (answer, closed) = read_to_close(&mut stream, Duration::from_secs(15));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "the idle connection was not closed");
}

/// A declared body over the limit is refused at once, before a byte of it
/// is sent, on every route and in each API's own shape.
#[test]
fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
    };
    let kratos = read_to_close(
        &mut connect(&server, &head("/admin/recovery/link")),
        Duration::from_secs(10),
    )
    .0;
    assert!(kratos.starts_with("HTTP/1.1 413"), "{kratos}");
    let error = &body_of(&kratos)["error"];
    assert_eq!(error["code"], 413);
    assert!(error["request"].is_string(), "{kratos}");

    let path = format!("/api/v3/core/users/{}/recovery/", ann["pk"]);
    let authentik = read_to_close(&mut connect(&server, &head(&path)), Duration::from_secs(10)).0;
    assert!(authentik.starts_with("HTTP/1.1 413"), "{authentik}");
    assert!(body_of(&authentik)["detail"].is_string(), "{authentik}");

    let page = read_to_close(
        &mut connect(&server, &head("/self-service/recovery")),
        Duration::from_secs(10),
    )
    .0;
    assert!(page.starts_with("HTTP/1.1 413"), "{page}");
    assert!(page.contains("text/html"), "{page}");

    // A route that reads no body refuses it all the same.
    let alive = read_to_close(
        &mut connect(&server, &head("/health/alive")),
        Duration::from_secs(10),
    )
    .0;
    assert!(
        alive.starts_with("HTTP/1.1 413") || alive.starts_with("HTTP/1.1 405"),
        "{alive}"
    );
}

/// A body that arrives too slowly is answered 408 once the request timeout
/// passes, and nothing is created for it.
#[test]
fn a_trickled_body_is_answered_408_after_the_request_timeout() {
    let server = Server::start_with(&[("RECLAIM_REQUEST_TIMEOUT", "1s")]);
    let ann = server.identity(Some("ann@example.com"));
    let body = format!("{{\"identity_id\": \"{}\"}}", ann["id"].as_str().unwrap());
    let mut stream = connect(
        &server,
        &format!(
            "POST /admin/recovery/link HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..5]
        ),
    );
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(body_of(&answer)["error"]["code"], 408);
    let revoked = server.cli_json(&["revoke", "--identity", ann["id"].as_str().unwrap()]);
    assert_eq!(revoked["revoked"], 0, "{revoked}");
}

/// With the in-flight cap reached (one operation, held by a mail template
/// that loops until the deadline), the next operation is answered 503 with
/// `Retry-After` at once, and served once the first has ended.
#[test]
fn operations_over_the_in_flight_cap_are_answered_503_with_retry_after() {
    let templates = tempfile::tempdir().unwrap();
    let dir = templates.path();
    std::fs::write(dir.join("recovery-link.subject"), "Recover").unwrap();
    std::fs::write(
        dir.join("recovery-link.txt"),
        "{% for i in range(100000) %}{% for j in range(100000) %}\
         {% for k in range(100000) %}{% endfor %}{% endfor %}{% endfor %}{{ link }}",
    )
    .unwrap();
    std::fs::write(dir.join("recovery-link.html"), "<p>{{ link }}</p>").unwrap();
    let server = Server::start_with(&[
        ("RECLAIM_MAX_OPERATIONS", "1"),
        ("RECLAIM_OPERATION_TIMEOUT", "3s"),
        ("RECLAIM_TEMPLATES", dir.to_str().unwrap()),
    ]);
    let ann = server.identity(Some("ann@example.com"));
    let mail_url = server.url(&format!(
        "/api/v3/core/users/{}/recovery_email/?email_stage=default",
        ann["pk"]
    ));
    let looping = std::thread::spawn(move || {
        client()
            .post(mail_url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap()
            .text()
            .unwrap()
    });
    // The looping operation holds the one place once the gauge says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(&server).contains("reclaim_operations_in_flight 1\n") {
        assert!(Instant::now() < deadline, "{}", metrics(&server));
        std::thread::sleep(Duration::from_millis(10));
    }
    let refused = request_link(&server, &ann);
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["code"], 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in flight"),
        "{body}"
    );
    let failed = looping.join().unwrap();
    assert!(failed.contains("failed"), "{failed}");
    assert_eq!(request_link(&server, &ann).status(), 200);
}
