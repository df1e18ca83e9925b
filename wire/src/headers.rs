//! The security headers on every answer of either server.
//!
//! Answers carry links, tokens and sessions: none may be cached or leak
//! through a Referer to another site (`same-origin`: a Referer only ever
//! goes back to us, which also makes browsers name our origin on our own
//! form posts, so that a post with `Origin: null` can be refused). Pages run
//! no script and load only our stylesheet; a form may post only to us, or
//! (after a recovery) redirect to an allowed `return_to` or the hand-off
//! URL: browsers hold a redirect after a form's POST to `form-action` too.

use http::HeaderValue;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderName, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};

/// The path of the pages' stylesheet, the one answer that may be cached.
pub const STYLESHEET_PATH: &str = "/self-service/assets/style.css";

/// The headers for an answer to `path`, with `form_targets` (the allowed
/// return URLs, and the hand-off URL where there is one) as the places a
/// form may lead to.
pub fn security_headers(path: &str, form_targets: &[url::Url]) -> Vec<(HeaderName, HeaderValue)> {
    let mut form_action = String::from("'self'");
    for allowed in form_targets {
        form_action.push(' ');
        form_action.push_str(&allowed.origin().ascii_serialization());
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut headers = vec![
        (REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    // Origins are ASCII by construction; a value that still won't fit is
    // left out rather than sent broken.
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.push((CONTENT_SECURITY_POLICY, csp));
    }
    if !path.starts_with("/self-service/assets/") {
        headers.push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    }
    headers
}

/// The stylesheet's own headers.
pub const STYLESHEET_HEADERS: [(HeaderName, &str); 2] = [
    (http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
    (CACHE_CONTROL, "public, max-age=3600"),
];
