//! Reclaim's HTTP API on the wire, defined once for both of its servers:
//! `reclaim serve` (axum, native) and the edge component that `wasmtime
//! serve` runs (`edge/`). Whatever one of them answers, the other answers
//! from the same definitions here, so the two can't drift:
//!
//! - [`kratos`]: Ory Kratos' admin recovery bodies and `errorGeneric`;
//! - [`identities`]: Kratos' identity admin bodies (served by `reclaim
//!   serve` only: the edge reads its directory from a file);
//! - [`authentik`]: authentik's recovery bodies, its error shapes and its
//!   `hours=1;minutes=30` durations;
//! - [`checks`]: identity ids, `return_to` against the allow-list, and
//!   recipient addresses;
//! - [`refusal`]: the recovery engine's refusals, as either server sees them;
//! - [`pages`]: the self-service pages and their problem pages;
//! - [`csrf`]: the pages' signed double-submit tokens;
//! - [`flows`]: Kratos' self-service recovery and settings flows, the one
//!   state machine the flow API and the pages share;
//! - [`headers`]: the security headers every answer carries;
//! - [`routes`]: the route table both servers and the fuzz target read;
//! - [`settings_file`]: `settings.json`, read by the edge and the
//!   filesystem provider.
//!
//! `expires_in` is judged by the recovery component itself, which both
//! servers call with the text as sent: one grammar, one set of messages.
//! Nothing here depends on a web framework: answers are a status and a
//! body, which each server sends its own way.

pub mod answer;
pub mod authentik;
pub mod checks;
pub mod csrf;
pub mod flows;
pub mod headers;
pub mod identities;
pub mod kratos;
pub mod mail;
pub mod pages;
pub mod refusal;
pub mod routes;
pub mod settings_file;

/// Largest request body either server reads; a declared `Content-Length`
/// over it is refused with 413 before a byte is read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Where the CSRF cookie is sent: the pages and the flows.
pub const CSRF_PATH: &str = "/self-service";

/// A timestamp (nanoseconds since the Unix epoch) as `expires_at` is
/// written: RFC 3339 in UTC, with the nanoseconds.
pub fn rfc3339(nanos: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
    humantime::format_rfc3339_nanos(at).to_string()
}

/// The message of the 413 for a body over [`MAX_BODY_BYTES`].
pub const BODY_TOO_LARGE: &str = "The request body is larger than 16 KiB.";

/// A refusal of the limits (a body too large, a request too slow, an
/// overload) in the shape of the API its path belongs to.
#[derive(Debug)]
pub enum LimitRefusal {
    /// authentik's `{"detail", "code"}`, under `/api/v3/`.
    Authentik(authentik::AuthentikError),
    /// A problem page (status, title, message), under `/self-service/`.
    Page(http::StatusCode, &'static str, String),
    /// Kratos' `errorGeneric`, for its routes and any other path.
    Kratos(kratos::ErrorGeneric),
}

impl LimitRefusal {
    /// The refusal of a request to `path` with `status` and `message`;
    /// `request` is the id the server logs the request under.
    pub fn new(path: &str, status: http::StatusCode, message: &str, request: &str) -> Self {
        if path.starts_with("/api/v3/") {
            Self::Authentik(authentik::AuthentikError::Other(status, message.to_owned()))
        } else if path.starts_with("/self-service/") {
            let title = status.canonical_reason().unwrap_or("Request refused");
            Self::Page(status, title, message.to_owned())
        } else {
            Self::Kratos(kratos::ErrorGeneric::refused(status, message, request))
        }
    }
}
