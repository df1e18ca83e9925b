//! An incoming `wasi:http` request, read whole (bodies are at most 16 KiB)
//! into plain values the routes work on.

use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use reclaim_wire::{BODY_TOO_LARGE, MAX_BODY_BYTES};
use wasip2::http::types::{IncomingBody, IncomingRequest, Method as WasiMethod};
use wasip2::io::streams::StreamError;

use crate::reply::Reply;

/// A request as the routes see it.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The id in `X-Request-Id` and in error bodies.
    pub id: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Reads `incoming`; a body over the limit (declared or sent) is refused
/// with 413 in the shape of the API its path belongs to.
pub fn read(incoming: IncomingRequest, id: &str) -> Result<Request, (String, Reply)> {
    let target = incoming.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (target, String::new()),
    };
    let method = match incoming.method() {
        WasiMethod::Get => Method::GET,
        WasiMethod::Head => Method::HEAD,
        WasiMethod::Post => Method::POST,
        WasiMethod::Put => Method::PUT,
        WasiMethod::Delete => Method::DELETE,
        WasiMethod::Connect => Method::CONNECT,
        WasiMethod::Options => Method::OPTIONS,
        WasiMethod::Trace => Method::TRACE,
        WasiMethod::Patch => Method::PATCH,
        // hyper has checked the token already; anything else is no route's.
        WasiMethod::Other(other) => Method::from_bytes(other.as_bytes())
            .unwrap_or_else(|_| Method::from_bytes(b"OTHER").expect("a token")),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in incoming.headers().entries() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    let too_large = |path: String| {
        let reply = Reply::refusal(&path, StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE, id);
        (path, reply)
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large(path));
    }
    let Some(body) = read_body(&incoming) else {
        return Err(too_large(path));
    };
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
        id: id.to_string(),
    })
}

/// The body, or none when it runs past the limit. A body the client
/// breaks off is what arrived of it: the routes then refuse it as
/// malformed.
fn read_body(incoming: &IncomingRequest) -> Option<Vec<u8>> {
    let Ok(body) = incoming.consume() else {
        return Some(Vec::new());
    };
    let mut bytes = Vec::new();
    {
        let Ok(stream) = body.stream() else {
            return Some(bytes);
        };
        loop {
            match stream.blocking_read(MAX_BODY_BYTES as u64 + 1) {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_BODY_BYTES {
                        return None;
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(_)) => break,
            }
        }
    }
    IncomingBody::finish(body);
    Some(bytes)
}
