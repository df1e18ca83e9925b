//! Server-rendered self-service pages (no JavaScript), auto-escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Value};

/// The stylesheet the pages link to (the CSP allows styles from self only).
pub const STYLESHEET: &str = include_str!("../../templates/pages/style.css");

macro_rules! page {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../templates/pages/", $name)),
        )
    };
}

const PAGES: [(&str, &str); 8] = [
    page!("base.html"),
    page!("request.html"),
    page!("sent.html"),
    page!("confirm.html"),
    page!("code.html"),
    page!("password.html"),
    page!("done.html"),
    page!("error.html"),
];

/// The page templates, parsed once at start-up.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in PAGES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// Renders `name` with `ctx` as an HTML response with `status`.
    pub fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, page = name, "page does not render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }

    /// A problem page that offers to request a new link.
    pub fn problem(&self, status: StatusCode, title: &str, message: &str) -> Response {
        self.render(status, "error.html", minijinja::context! { title, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes_values() {
        let pages = Pages::new().unwrap();
        let response = pages.render(
            StatusCode::OK,
            "confirm.html",
            minijinja::context! { flow => "f", token => "\"><script>" },
        );
        assert_eq!(response.status(), StatusCode::OK);
        for (name, _) in PAGES {
            let env = &pages.env;
            let html = env
                .get_template(name)
                .unwrap()
                .render(minijinja::context! { error => "<b>" })
                .unwrap();
            assert!(!html.contains("<b>"), "{name} escapes values");
        }
    }
}
