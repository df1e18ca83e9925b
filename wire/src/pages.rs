//! The self-service pages (server-rendered, no JavaScript, auto-escaped)
//! and the problem page for each way a step can fail.

use http::StatusCode;
use minijinja::{AutoEscape, Environment, Value};

use crate::refusal::{Failure, Kind, Outcome};

/// The stylesheet the pages link to (the CSP allows styles from self only).
pub const STYLESHEET: &str = include_str!("../templates/pages/style.css");

macro_rules! page {
    ($name:literal) => {
        ($name, include_str!(concat!("../templates/pages/", $name)))
    };
}

const PAGES: [(&str, &str); 8] = [
    page!("base.html"),
    page!("confirm.html"),
    page!("code.html"),
    page!("password.html"),
    page!("done.html"),
    page!("error.html"),
    page!("recovered.html"),
    page!("flow.html"),
];

/// The page templates, parsed once.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in PAGES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// The HTML of page `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    /// The HTML of a problem page that offers to request a new link.
    pub fn problem(&self, title: &str, message: &str) -> Result<String, minijinja::Error> {
        self.render("error.html", minijinja::context! { title, message })
    }
}

/// The status, title and message of the problem page for an outcome;
/// `request` names the request where the server logged the cause.
pub fn problem(outcome: &Outcome, request: &str) -> (StatusCode, &'static str, String) {
    match outcome {
        Outcome::Refused(r) => {
            let title = match r.kind {
                Kind::CredentialExpired => "This recovery link has expired",
                Kind::CredentialUsed => "This recovery link was already used",
                Kind::CredentialRevoked => "This recovery link is no longer valid",
                Kind::CredentialUnknown => "This recovery link is not valid",
                Kind::TooManyAttempts => "Too many wrong codes",
                Kind::IdentityInactive => "This account is disabled",
                _ => "Recovery is not possible",
            };
            let status = StatusCode::from_u16(r.code).unwrap_or(StatusCode::BAD_REQUEST);
            (status, title, r.message.clone())
        }
        Outcome::Failed(Failure::Unavailable | Failure::Overloaded) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "Nothing was changed. Please try again in a moment.".into(),
        ),
        Outcome::Failed(Failure::Failed) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            format!("Nothing was changed. Please try again (request {request})."),
        ),
    }
}

/// The problem page of a form post that is not from our own pages.
pub const FORGED: (StatusCode, &str, &str) = (
    StatusCode::FORBIDDEN,
    "Request refused",
    "This form was sent from another site, or the page it came from is out of date. Go back, reload the page and try again.",
);

/// The title of the page of a form that could not be read (400).
pub const UNREADABLE_FORM: &str = "This form could not be read";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes_values() {
        let pages = Pages::new().unwrap();
        let html = pages
            .render(
                "confirm.html",
                minijinja::context! { flow => "f", token => "\"><script>" },
            )
            .unwrap();
        assert!(!html.contains("\"><script>"));
        // A flow's page draws what the flow says: its texts are values too.
        let flow = serde_json::json!({"ui": {"action": "/self-service/recovery?flow=f",
            "messages": [{"id": 4060006, "type": "error", "text": "<b>"}],
            "nodes": [{"type": "input", "group": "code", "messages": [],
                "attributes": {"name": "email", "type": "email", "value": "<b>", "node_type": "input"},
                "meta": {"label": {"id": 1070007, "type": "info", "text": "<b>"}}}]}});
        for (name, _) in PAGES {
            let ctx = minijinja::context! { error => "<b>", flow => flow, title => "<b>" };
            let html = pages.render(name, ctx).unwrap();
            assert!(!html.contains("<b>"), "{name} escapes values");
        }
    }
}
