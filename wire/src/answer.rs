//! An answer as both servers send it: a status, a content type and a body.
//! Each route's `answer` makes one; each server's adapter turns it into its
//! framework's response and adds the headers every answer carries.

use http::StatusCode;

#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Answer {
    /// `value` as JSON.
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Self {
        Self {
            status,
            content_type: Some("application/json"),
            body: serde_json::to_vec(value).expect("the wire's shapes serialise"),
        }
    }

    /// No body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            content_type: None,
            body: Vec::new(),
        }
    }
}
