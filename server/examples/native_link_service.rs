//! The baseline for Reclaim's sandbox: a native service doing the same work
//! per link with none of the isolation. `POST /admin/recovery/link` checks
//! the bearer token, finds the identity, draws 256 random bits, stores their
//! HMAC-SHA256 in one SQLite row (WAL, one transaction per request) and
//! answers the link. `scripts/bench-isolation` runs it beside `reclaim serve`.
//!
//! ```sh
//! cargo run --release -p reclaim-server --example native_link_service -- DB ADDR [full|normal]
//! ```

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &[u8] = b"bench-secret-0123456789abcdef0123456789abcdef";

struct Service {
    db: Mutex<Connection>,
    token: String,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("DB");
    let addr = args.next().expect("ADDR");
    let synchronous = args.next().unwrap_or_else(|| "full".into());
    let db = Connection::open(path)?;
    db.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};
         CREATE TABLE IF NOT EXISTS native_credentials (key TEXT PRIMARY KEY, identity_id TEXT NOT NULL,
             expires_at INTEGER NOT NULL);"
    ))?;
    let service = Arc::new(Service {
        db: Mutex::new(db),
        token: std::env::var("RECLAIM_ADMIN_TOKEN")?,
    });
    let app = Router::new()
        .route("/admin/recovery/link", post(create_link))
        .with_state(service);
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

async fn create_link(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    let presented = headers.get("authorization").and_then(|v| v.to_str().ok());
    if presented != Some(&format!("Bearer {}", service.token)) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let identity = body["identity_id"]
        .as_str()
        .ok_or(StatusCode::BAD_REQUEST)?
        .to_owned();
    tokio::task::spawn_blocking(move || {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let token = hex::encode(raw);
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
        mac.update(token.as_bytes());
        let key = hex::encode(mac.finalize().into_bytes());
        let expires_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64 + 3600);
        let db = service.db.lock().unwrap_or_else(|e| e.into_inner());
        let found: Option<String> = db
            .query_row(
                "SELECT id FROM identities WHERE id = ?1",
                params![identity],
                |r| r.get(0),
            )
            .optional()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let id = found.ok_or(StatusCode::NOT_FOUND)?;
        db.execute(
            "INSERT INTO native_credentials (key, identity_id, expires_at) VALUES (?1, ?2, ?3)",
            params![key, id, expires_at],
        )
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(Json(json!({
            "recovery_link": format!("http://127.0.0.1/self-service/recovery?token={token}"),
            "expires_at": expires_at,
        })))
    })
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
}
