//! The self-service pages as axum responses; the templates and what each
//! problem page says are the wire crate's, shared with the edge.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Value;

pub use reclaim_wire::pages::STYLESHEET;

/// The page templates, parsed once at start-up.
pub struct Pages(reclaim_wire::pages::Pages);

impl Pages {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self(reclaim_wire::pages::Pages::new()?))
    }

    /// Renders `name` with `ctx` as an HTML response with `status`.
    pub fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        html(status, name, self.0.render(name, ctx))
    }

    /// A problem page that offers to request a new link.
    pub fn problem(&self, status: StatusCode, title: &str, message: &str) -> Response {
        html(status, "error.html", self.0.problem(title, message))
    }
}

fn html(status: StatusCode, name: &str, rendered: Result<String, minijinja::Error>) -> Response {
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, page = name, "page does not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
