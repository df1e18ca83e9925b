//! `reclaim serve`'s side of the recovery flow driver
//! (`reclaim_wire::flows::driver`): its backends keep the flows, the paced
//! queue sends, a redemption opens a session and writes the flow's ending
//! in its own unit of work. The cookies a request earns are set on
//! whatever answers it ([`Serve::finish`]).

use std::net::SocketAddr;

use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use reclaim_wire::answer::Answer;
use reclaim_wire::flows::driver::{Checked, Face, FlowConfig, FlowHost, Kept};
use reclaim_wire::flows::settings::Ending as Answered;
use reclaim_wire::flows::{FlowType, Record, ui_location};
use serde_json::{Value, json};

use super::recovery::Ending;
use super::{AppState, cookie_token, csrf_token, draw_id, failed, insert, load, replace, sessions};
use crate::http::self_service::password::{SESSION_LIFESPAN, SessionCookie, session_cookie};
use crate::http::self_service::redeem::new_session;
use crate::http::{rate_limit, request_id, respond};
use crate::operations::{Error, Redeemed, Step as Redemption};
use crate::storage::NewRequest;
use crate::wit::{ErrorKind, IdentityRef};

/// One request to the recovery flows on `reclaim serve`.
pub(crate) struct Serve<'a> {
    app: &'a AppState,
    headers: &'a HeaderMap,
    peer: SocketAddr,
    cookies: Vec<HeaderValue>,
}

impl<'a> Serve<'a> {
    pub(crate) fn new(app: &'a AppState, headers: &'a HeaderMap, peer: SocketAddr) -> Self {
        Self {
            app,
            headers,
            peer,
            cookies: Vec::new(),
        }
    }

    /// `response` with the cookies this request earned.
    pub(crate) fn finish(self, mut response: Response) -> Response {
        for cookie in self.cookies {
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, cookie);
        }
        response
    }

    /// The limit on requests by address and client, for the pages and the
    /// flows alike: a flow can't mail an address more often than the form.
    async fn admit(&self, email: &str, face: Face) -> Result<(), Response> {
        let counted = rate_limit::count_request(self.app, self.peer, self.headers, email).await;
        match counted {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(too_many(self.app, wait, face)),
            Err(e) => Err(failed(e)),
        }
    }

    /// A redemption's ending as the flow answers it: the platform's
    /// hand-off, or the session (its cookie for a browser) and the
    /// settings UI.
    async fn ending(
        &mut self,
        passed: &Record,
        redeemed: Redeemed,
        secret: String,
        settings_id: String,
    ) -> Result<Answered, Response> {
        let app = self.app;
        let identity_id = redeemed.redemption.identity_id.clone();
        match redeemed.step {
            Redemption::HandedOff { assertion } => {
                let identity = IdentityRef::Id(identity_id);
                match app.reclaim.notify_account_recovered(&identity).await {
                    Ok(()) => app.courier.notify_one(),
                    Err(e) => tracing::warn!(error = %e, "account-recovered notice not queued"),
                }
                let target = passed
                    .return_to
                    .as_deref()
                    .and_then(|r| app.config.allowed_return_to(r))
                    .or_else(|| app.config.handoff_url.clone())
                    .and_then(|t| reclaim_wire::checks::handoff_location(&t, &assertion));
                let Some(location) = target else {
                    return Err(failed(anyhow::anyhow!(
                        "no hand-off URL for an identity with a second factor"
                    )));
                };
                Ok(Answered::HandOff { location })
            }
            Redemption::Session => {
                let cookie = SessionCookie {
                    identity_id,
                    secret,
                };
                let location = ui_location(&app.config.settings_ui_url, &settings_id);
                if passed.flow_type == FlowType::Browser {
                    let value = cookie.value();
                    let set = session_cookie(app, &value, SESSION_LIFESPAN.as_secs());
                    self.cookies.push(set);
                }
                Ok(if app.config.use_continue_with_transitions {
                    Answered::ContinueWith {
                        session_token: (passed.flow_type == FlowType::Api).then(|| cookie.value()),
                        settings_flow: settings_id,
                        location,
                    }
                } else {
                    Answered::RedirectToSettings { location }
                })
            }
        }
    }
}

impl FlowHost for Serve<'_> {
    type Reply = Response;

    fn config(&self) -> FlowConfig<'_> {
        let config = &self.app.config;
        FlowConfig {
            public_url: &config.settings.public_url,
            recovery_ui_url: &config.recovery_ui_url,
            lifespan_ns: crate::clock::duration_nanos(config.flow_lifespan),
            max_code_attempts: config
                .settings
                .max_code_attempts
                .unwrap_or(reclaim_wire::flows::DEFAULT_MAX_CODE_ATTEMPTS),
            continue_with: config.use_continue_with_transitions,
        }
    }

    fn now(&self) -> u64 {
        self.app.now_nanos()
    }

    fn request_id(&self) -> String {
        request_id()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn answer(&mut self, answer: Answer) -> Response {
        respond(answer)
    }

    fn see_other(&mut self, location: &str) -> Response {
        super::see_other(location)
    }

    fn page(&mut self, status: StatusCode, flow: Value, title: &str) -> Response {
        let context = minijinja::context! { flow, title };
        self.app.pages.render(status, "flow.html", context)
    }

    fn allowed_return_to(&self, given: &str) -> Option<String> {
        self.app.config.allowed_return_to(given)
    }

    fn cookie_token(&self) -> Option<String> {
        cookie_token(self.app, self.headers)
    }

    fn issue_csrf(&mut self) -> Result<String, Response> {
        let (token, cookie) = csrf_token(self.app, self.headers)?;
        self.cookies.extend(cookie);
        Ok(token)
    }

    fn csrf_verified(&self, token: Option<&str>) -> bool {
        self.app.csrf.verify(self.headers, token)
    }

    async fn admit_flow(&mut self, face: Face) -> Result<(), Response> {
        match rate_limit::count_flow(self.app, self.peer, self.headers).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(too_many(self.app, wait, face)),
            Err(e) => Err(failed(e)),
        }
    }

    async fn has_session(&mut self) -> Result<bool, Response> {
        Ok(sessions::live(self.app, self.headers).await?.is_some())
    }

    async fn load(&mut self, id: &str) -> Result<Option<Kept>, Response> {
        load(self.app, id).await
    }

    async fn insert(&mut self, record: &Record) -> Result<String, Response> {
        insert(self.app, record).await
    }

    async fn replace(&mut self, kept: &Kept, record: &Record) -> Result<bool, Response> {
        replace(self.app, kept, record).await
    }

    /// Through the paced queue, as the pages' requests: known and unknown
    /// addresses cost the same.
    async fn send(
        &mut self,
        email: &str,
        method: &str,
        return_to: Option<&str>,
        face: Face,
    ) -> Result<Option<String>, Response> {
        self.admit(email, face).await?;
        let code_flow = (method == "code").then(draw_id).transpose()?;
        let request = NewRequest {
            email,
            return_to,
            code_flow: code_flow.as_deref(),
        };
        self.app
            .backend
            .queue_request(&request, self.app.now_nanos())
            .await
            .map_err(failed)?;
        Ok(code_flow)
    }

    async fn check(
        &mut self,
        kept: &Kept,
        passed: &Record,
        code_flow: &str,
        code: &str,
        csrf: Option<&str>,
    ) -> Result<Checked, Response> {
        let app = self.app;
        let (secret, session) = new_session(app).map_err(|e| super::refused(&e))?;
        let ending = Ending::prepare(
            app,
            passed.flow_type,
            passed.return_to.clone(),
            csrf,
            session.key.clone(),
            "code_recovery",
            Some((kept, passed)),
        )?;
        let settings_id = ending.settings_id.clone();
        let redeemed = app
            .reclaim
            .redeem_code_into(code_flow, code, session, ending.step())
            .await;
        match redeemed {
            Ok(redeemed) => {
                let answered = self.ending(passed, redeemed, secret, settings_id).await?;
                Ok(Checked::Passed(answered))
            }
            Err(Error::Refused(r)) => {
                let kind = reclaim_wire::kind_of!(ErrorKind, r.kind);
                if Record::is_wrong_code(kind) {
                    Ok(Checked::Wrong(kind))
                } else {
                    Err(super::refused(&Error::Refused(r)))
                }
            }
            Err(e) => Err(super::refused(&e)),
        }
    }
}

/// 429 with `Retry-After`: in Kratos' envelope for JSON, a page for a
/// browser.
fn too_many(app: &AppState, wait: std::time::Duration, face: Face) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = if face == Face::Json {
        let body = json!({"error": {
            "code": 429, "status": "Too Many Requests",
            "reason": "Too many account recovery attempts.",
            "message": format!("Please try again in {seconds} seconds. Codes and links already sent stay valid."),
            "request": request_id(),
        }});
        respond(Answer::json(StatusCode::TOO_MANY_REQUESTS, &body))
    } else {
        let minutes = seconds.div_ceil(60);
        app.pages.problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &format!(
                "Too many account recovery attempts. Please try again after {minutes} minutes. \
                 Links and codes already sent stay valid: use the most recent one you received."
            ),
        )
    };
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}
