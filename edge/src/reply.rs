//! An answer, built from the wire crate's shapes and sent as a
//! `wasi:http` response with the headers every answer carries.

use std::io::Write;

use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use reclaim_wire::LimitRefusal;
use reclaim_wire::authentik::AuthentikError;
use reclaim_wire::kratos::ErrorGeneric;
use wasip2::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

use crate::settings;

pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

impl From<reclaim_wire::answer::Answer> for Reply {
    fn from(answer: reclaim_wire::answer::Answer) -> Self {
        let mut reply = Self::new(answer.status);
        if let Some(kind) = answer.content_type {
            reply = reply.header(CONTENT_TYPE, kind);
        }
        reply.body = answer.body;
        reply
    }
}

impl Reply {
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Self {
        let mut reply = Self::new(status).header(CONTENT_TYPE, "application/json");
        reply.body = serde_json::to_vec(value).expect("serialisable");
        reply
    }

    pub fn html(status: StatusCode, html: String) -> Self {
        let mut reply = Self::new(status).header(CONTENT_TYPE, "text/html; charset=utf-8");
        reply.body = html.into_bytes();
        reply
    }

    /// A 303 to `location`.
    pub fn see_other(location: &str) -> Self {
        match HeaderValue::from_str(location) {
            Ok(location) => {
                let mut reply = Self::new(StatusCode::SEE_OTHER);
                reply.headers.push((LOCATION, location));
                reply
            }
            Err(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub fn header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// `e` as the wire crate answers it (`reclaim_wire::answer`).
    pub fn kratos(e: &ErrorGeneric) -> Self {
        Self::from(reclaim_wire::answer::Answer::from(e))
    }

    /// `e` as the wire crate answers it.
    pub fn authentik(e: &AuthentikError) -> Self {
        Self::from(reclaim_wire::answer::Answer::from(e))
    }

    /// A refusal of the limits in the shape of `path`'s API, as
    /// `reclaim serve` answers it.
    pub fn refusal(path: &str, status: StatusCode, message: &str, request: &str) -> Self {
        match LimitRefusal::new(path, status, message, request) {
            LimitRefusal::Authentik(e) => Self::authentik(&e),
            LimitRefusal::Page(status, title, message) => {
                crate::pages::problem(status, title, &message)
            }
            LimitRefusal::Kratos(e) => Self::kratos(&e),
        }
    }

    /// Sends the answer with the security headers, the request id, and a
    /// `Retry-After` on every 503.
    pub fn send(self, out: ResponseOutparam, path: &str, request: &str) {
        let mut headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        for (name, value) in
            reclaim_wire::headers::security_headers(path, &settings::allowed_return_urls())
        {
            headers.push((name.to_string(), value.as_bytes().to_vec()));
        }
        headers.push(("x-request-id".into(), request.as_bytes().to_vec()));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.push((RETRY_AFTER.to_string(), b"1".to_vec()));
        }
        let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(fields);
        // Every status we send is a valid one.
        let _ = response.set_status_code(self.status.as_u16());
        let Ok(body) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        {
            let Ok(mut stream) = body.write() else {
                return;
            };
            // A client that went away gets no answer: nothing to do about it.
            if stream
                .write_all(&self.body)
                .and_then(|()| std::io::Write::flush(&mut stream))
                .is_err()
            {
                return;
            }
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
