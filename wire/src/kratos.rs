//! Ory Kratos' admin recovery API (as Connhex publishes it under `/iam`):
//! `POST /recovery/link` and `POST /recovery/code`, errors as `errorGeneric`.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::answer::Answer;
use crate::checks;
use crate::refusal::{Failure, Outcome};

/// Body of `POST /admin/recovery/link`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRecoveryLinkForIdentityBody {
    /// The identity to recover.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub identity_id: String,
    /// Lifespan of the link, `^[0-9]+(ns|us|ms|s|m|h)$`; the configured
    /// default (1h) when absent.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]+(ns|us|ms|s|m|h)$"))]
    pub expires_in: Option<String>,
}

/// Body of `POST /admin/recovery/code`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRecoveryCodeForIdentityBody {
    /// The identity to recover.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub identity_id: String,
    /// Lifespan of the code, `^[0-9]+(ns|us|ms|s|m|h)$`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]+(ns|us|ms|s|m|h)$"))]
    pub expires_in: Option<String>,
    /// Accepted for compatibility with Kratos; both flows behave alike.
    pub flow_type: Option<String>,
}

/// `?return_to=`: where to send the person after recovery.
#[derive(Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct ReturnTo {
    pub return_to: Option<String>,
}

/// A recovery link.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryLinkForIdentity {
    pub recovery_link: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// A recovery code and the link to the page that takes it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryCodeForIdentity {
    pub recovery_link: String,
    pub recovery_code: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// Kratos' `errorGeneric`.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorGeneric {
    pub error: GenericError,
}

/// The error inside `errorGeneric`.
#[derive(Serialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenericError {
    pub code: u16,
    pub status: String,
    pub reason: String,
    pub message: String,
    /// Request id, also in the server's log.
    pub request: String,
}

const MALFORMED: &str = "The request was malformed or contained invalid parameters.";
const UNAVAILABLE: &str = "The service is temporarily unavailable; please try again.";

impl ErrorGeneric {
    /// An error with `status`'s own code and text; `request` is the id the
    /// server logs the request under.
    pub fn new(
        status: StatusCode,
        reason: &str,
        message: impl Into<String>,
        request: &str,
    ) -> Self {
        Self::from_parts(
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            reason,
            message.into(),
            request,
        )
    }

    fn from_parts(code: u16, status: &str, reason: &str, message: String, request: &str) -> Self {
        Self {
            error: GenericError {
                code,
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                request: request.to_string(),
            },
        }
    }

    /// 400 with `message` saying what was wrong.
    pub fn bad_request(message: impl Into<String>, request: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, MALFORMED, message, request)
    }

    /// 401: no admin token, or the wrong one.
    pub fn unauthorized(request: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The request could not be authorized.",
            "Send the admin token as \"Authorization: Bearer <token>\".",
            request,
        )
    }

    /// A refusal of the limits (413, 408, 503) in this shape.
    pub fn refused(status: StatusCode, message: &str, request: &str) -> Self {
        Self::new(status, "The request was refused.", message, request)
    }

    /// An operation's outcome: the component's own refusal as it chose it,
    /// or the server's failure.
    pub fn from_outcome(outcome: &Outcome, request: &str) -> Self {
        match outcome {
            Outcome::Refused(r) => {
                Self::from_parts(r.code, &r.status, &r.reason, r.message.clone(), request)
            }
            Outcome::Failed(Failure::Unavailable) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "The database is not answering; nothing was stored.",
                request,
            ),
            Outcome::Failed(Failure::Overloaded) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "Too many recovery operations are in flight; nothing was stored.",
                request,
            ),
            Outcome::Failed(Failure::Failed) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An internal server error occurred, please contact the system administrator.",
                "The recovery engine failed; nothing was stored.",
                request,
            ),
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialisable")
    }
}

/// Parses a JSON body, turning every failure into a 400.
///
/// Every such body is a JSON object: serde would also take an array for a
/// struct, filling its fields in order, which no client means and the
/// schema refuses, so anything but an object is a 400 here.
pub fn json_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    request: &str,
) -> Result<T, ErrorGeneric> {
    json_of_shape(bytes, request, b'{', "an object")
}

/// [`json_body`] for the one body that is an array (a JSON Patch).
pub fn json_array_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    request: &str,
) -> Result<T, ErrorGeneric> {
    json_of_shape(bytes, request, b'[', "an array")
}

fn json_of_shape<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    request: &str,
    opening: u8,
    shape: &str,
) -> Result<T, ErrorGeneric> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first.is_some_and(|&b| b != opening) {
        return Err(ErrorGeneric::bad_request(
            format!("The request body must be {shape} in JSON."),
            request,
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ErrorGeneric::bad_request(
            format!("The request body could not be decoded as JSON: {e}"),
            request,
        )
    })
}

/// `identity_id` as the engine takes it (a lower-case UUID), or a 400.
pub fn identity_id(id: &str, request: &str) -> Result<String, ErrorGeneric> {
    checks::identity_id(id)
        .ok_or_else(|| ErrorGeneric::bad_request("\"identity_id\" must be a UUID.", request))
}

/// `?return_to=` in its normalised form if the allow-list admits it; none
/// when absent or empty; a 400 when not allowed.
pub fn return_to(
    allowed: &[url::Url],
    return_to: Option<String>,
    request: &str,
) -> Result<Option<String>, ErrorGeneric> {
    match return_to.filter(|r| !r.is_empty()) {
        Some(url) => match checks::allowed_return_to(allowed, &url) {
            Some(normalised) => Ok(Some(normalised)),
            None => Err(ErrorGeneric::bad_request(
                format!("Requested return_to URL {url:?} is not allowed."),
                request,
            )),
        },
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_an_object_is_refused_before_serde_fills_a_struct_from_it() {
        let id = "9b2c72de-a449-4444-a852-24a7583cf696";
        let object = format!(r#" {{"identity_id": "{id}"}}"#);
        let body: CreateRecoveryLinkForIdentityBody = json_body(object.as_bytes(), "r").unwrap();
        assert_eq!(body.identity_id, id);
        let array = format!(r#"["{id}"]"#);
        let refused = json_body::<CreateRecoveryLinkForIdentityBody>(array.as_bytes(), "r");
        let Err(refused) = refused else {
            panic!("an array was taken for an object")
        };
        assert!(refused.error.message.contains("must be an object"));
        assert!(json_array_body::<Vec<u8>>(b"\n[1, 2]", "r").is_ok());
        assert!(json_array_body::<Vec<u8>>(b"{}", "r").is_err());
    }
}

/// `POST /recovery/link` or `/recovery/code`, admitted: whose, for how
/// long, and where to after.
#[derive(Debug, PartialEq, Eq)]
pub struct IssueRequest {
    pub identity_id: String,
    pub expires_in: Option<String>,
    pub return_to: Option<String>,
}

/// Admits a request for a link or a code: the body, then the identity id,
/// then `return_to` against `allowed` (Kratos' order). Both bodies have the
/// fields read here; a code's `flow_type` is accepted and ignored.
pub fn admit_issue(
    query: &str,
    body: &[u8],
    allowed: &[url::Url],
    request: &str,
) -> Result<IssueRequest, ErrorGeneric> {
    let body: CreateRecoveryCodeForIdentityBody = json_body(body, request)?;
    let identity_id = identity_id(&body.identity_id, request)?;
    let query: ReturnTo = serde_urlencoded::from_str(query).map_err(|e| {
        ErrorGeneric::bad_request(format!("The query could not be read: {e}"), request)
    })?;
    Ok(IssueRequest {
        identity_id,
        expires_in: body.expires_in,
        return_to: return_to(allowed, query.return_to, request)?,
    })
}

/// The link made: 200 `recoveryLinkForIdentity`.
pub fn answer_link(link: String, expires_at: u64) -> Answer {
    Answer::json(
        StatusCode::OK,
        &RecoveryLinkForIdentity {
            recovery_link: link,
            expires_at: crate::rfc3339(expires_at),
        },
    )
}

/// The code made: 201 `recoveryCodeForIdentity`.
pub fn answer_code(link: String, code: String, expires_at: u64) -> Answer {
    Answer::json(
        StatusCode::CREATED,
        &RecoveryCodeForIdentity {
            recovery_link: link,
            recovery_code: code,
            expires_at: crate::rfc3339(expires_at),
        },
    )
}

impl From<&ErrorGeneric> for Answer {
    fn from(e: &ErrorGeneric) -> Self {
        Answer::json(e.status(), e)
    }
}
