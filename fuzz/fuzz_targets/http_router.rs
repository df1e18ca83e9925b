//! The whole HTTP application, in process, on the memory backend: any
//! method, path, query, headers and body (JSON, forms, cookies, with or
//! without the admin token and a valid CSRF pair). No request may panic or
//! get a 500, and every answer carries the security headers.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use reclaim::backends::{self, Location};
use reclaim::{NewIdentity, Reclaim, Runtime};
use reclaim_server::config::{Config, Options};
use reclaim_server::http::AppState;
use reclaim_wire::routes::ROUTES;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789";
const CONFIG: &str = r#"
public_url = "http://127.0.0.1:4433"
secrets = ["fuzzing-secret-fuzzing-secret-fuzzing-secret"]
allowed_return_urls = ["https://app.example/"]
[rate_limit]
per_address = 1000000
per_client = 1000000
window = "1s"
"#;

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    route: u8,
    raw_path: String,
    pk: Option<i64>,
    query: Option<String>,
    admin: bool,
    csrf: bool,
    content_type: u8,
    cookie: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Harness {
    tokio: tokio::runtime::Runtime,
    router: axum::Router,
    /// `reclaim_csrf=...` and the form token it goes with.
    csrf: (String, String),
    pk: i64,
    id: String,
    runs: u64,
}

impl Harness {
    fn new(runtime: &Runtime) -> Self {
        static DATA: OnceLock<tempfile::TempDir> = OnceLock::new();
        let data = DATA.get_or_init(|| tempfile::tempdir().unwrap());
        let config = Config::resolve_toml(
            CONFIG,
            Options {
                data: Some(data.path().to_path_buf()),
                admin_token: Some(ADMIN_TOKEN.into()),
                ..Options::default()
            },
        )
        .unwrap();
        let backend = backends::open(&Location::Memory).unwrap();
        let ann = backend
            .create_identity(
                &NewIdentity {
                    email: Some("ann@example.com".into()),
                    active: true,
                    ..Default::default()
                },
                0,
            )
            .unwrap();
        let reclaim = Reclaim::new(runtime.clone(), backend.clone(), config.settings.clone());
        let state = AppState::new(reclaim, backend, config, ADMIN_TOKEN.into()).unwrap();
        let router = reclaim_server::http::router(state);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let form = tokio
            .block_on(
                router.clone().oneshot(with_peer(
                    Request::get("/self-service/recovery")
                        .body(Body::empty())
                        .unwrap(),
                )),
            )
            .unwrap();
        let cookie = form.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let page = tokio
            .block_on(axum::body::to_bytes(form.into_body(), 1 << 20))
            .unwrap();
        let page = String::from_utf8_lossy(&page);
        let marker = "name=\"csrf_token\" value=\"";
        let start = page.find(marker).unwrap() + marker.len();
        let token = page[start..start + page[start..].find('"').unwrap()].to_owned();
        Self {
            tokio,
            router,
            csrf: (cookie, token),
            pk: ann.pk,
            id: ann.id.clone(),
            runs: 0,
        }
    }

    fn request(&self, input: &Input) -> Option<Request<Body>> {
        let method = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::HEAD,
            Method::DELETE,
            Method::PATCH,
        ][usize::from(input.method) % 6]
            .clone();
        // Every path of the route table both servers read, its `{id}` an
        // identity's pk or id, or any path at all.
        let paths = ROUTES.iter().flat_map(|spec| spec.paths.iter());
        let mut path = match paths.clone().nth(usize::from(input.route)) {
            Some(route) if route.starts_with("/api/v3/") => {
                route.replace("{id}", &input.pk.unwrap_or(self.pk).to_string())
            }
            Some(route) => route
                .replace("{id}", &self.id)
                .replace("{external_id}", "ext-1"),
            None => input.raw_path.clone(),
        };
        if let Some(query) = &input.query {
            path = format!("{path}?{query}");
        }
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in &input.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let content_type = [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
        ]
        .get(usize::from(input.content_type));
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", *content_type);
        }
        if input.admin {
            builder = builder.header("authorization", format!("Bearer {ADMIN_TOKEN}"));
        }
        let mut body = input.body.clone();
        let mut cookies: Vec<String> = input.cookie.iter().cloned().collect();
        if input.csrf {
            cookies.push(self.csrf.0.clone());
            builder = builder.header("origin", "http://127.0.0.1:4433");
            body.extend_from_slice(format!("&csrf_token={}", self.csrf.1).as_bytes());
        }
        if !cookies.is_empty() {
            builder = builder.header("cookie", cookies.join("; "));
        }
        builder.body(Body::from(body)).ok().map(with_peer)
    }
}

fn with_peer(mut request: Request<Body>) -> Request<Body> {
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fuzz_target!(|input: Input| {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| Runtime::embedded().unwrap());
    let mut harness = HARNESS
        .get_or_init(|| Mutex::new(Harness::new(runtime)))
        .lock()
        .unwrap();
    // The memory backend keeps every queued request and mail: start afresh
    // now and then so that memory stays flat.
    harness.runs += 1;
    if harness.runs % 2000 == 0 {
        *harness = Harness::new(runtime);
    }
    let Some(request) = harness.request(&input) else {
        return;
    };
    let path = request.uri().path().to_owned();
    let response = harness
        .tokio
        .block_on(harness.router.clone().oneshot(request))
        .unwrap();
    let status = response.status();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{input:?}");
    let headers = response.headers();
    assert!(headers.contains_key("content-security-policy"), "{input:?}");
    if !path.starts_with("/self-service/assets/") {
        assert_eq!(headers["cache-control"], "no-store", "{input:?}");
    }
    let _ = harness
        .tokio
        .block_on(axum::body::to_bytes(response.into_body(), 1 << 20));
});
