//! Kratos' recovery flows on `reclaim serve`: each route's handler runs
//! `reclaim_wire::flows::driver` (start, read, submit) over this server's
//! [`Serve`] host; [`Ending`] is what a redemption, on a flow or on the
//! pages, writes of the flows in its own unit of work.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use reclaim_wire::flows::driver;
use reclaim_wire::flows::{FlowType, Record};
use serde::Deserialize;
use utoipa::IntoParams;

use super::host::Serve;
use super::{AppState, Kept, cookie_token, draw_id, request_url, sessions};
use crate::http::self_service::password::SESSION_LIFESPAN;
use crate::operations::{Redeemed, Step as Redemption};
use crate::storage::{FlowStep, StoredFlow};

#[derive(Deserialize, IntoParams)]
pub struct Start {
    /// Where to send the person once recovered (checked against the allow-list).
    return_to: Option<String>,
}

/// Starts a recovery flow for a browser: JSON (with the CSRF cookie) for a
/// client that asks for it, else a 303 to the recovery UI.
#[utoipa::path(get, path = "/self-service/recovery/browser", tag = "self-service-flows",
    params(Start),
    responses(
        (status = 200, description = "The flow (Kratos' `recoveryFlow`), for a client asking for JSON", body = Object),
        (status = 303, description = "To the recovery UI with `?flow=`"),
        (status = 400, description = "`return_to` not allowed, or a session already live", body = Object),
        (status = 429, description = "The client started too many flows; see Retry-After (a page unless JSON was asked for)"),
    ))]
pub async fn create_browser(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Response {
    let mut host = Serve::new(&app, &headers, peer);
    let reply = driver::create_browser(&mut host, q.return_to).await;
    host.finish(reply)
}

/// Starts a recovery flow for a native app: no cookies, no CSRF token.
#[utoipa::path(get, path = "/self-service/recovery/api", tag = "self-service-flows",
    params(Start),
    responses(
        (status = 200, description = "The flow, `type: \"api\"`", body = Object),
        (status = 400, description = "`return_to` not allowed", body = Object),
        (status = 429, description = "The client started too many flows; see Retry-After", body = Object),
    ))]
pub async fn create_api(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Response {
    let mut host = Serve::new(&app, &headers, peer);
    let reply = driver::create_api(&mut host, q.return_to).await;
    host.finish(reply)
}

#[derive(Deserialize, IntoParams)]
pub struct FlowId {
    /// The flow's id.
    id: Option<String>,
}

/// A recovery flow; a browser flow only to the browser holding its cookie.
#[utoipa::path(get, path = "/self-service/recovery/flows", tag = "self-service-flows",
    params(FlowId),
    responses(
        (status = 200, description = "The flow", body = Object),
        (status = 400, description = "No `id`", body = Object),
        (status = 403, description = "`security_csrf_violation`: a browser flow without its cookie", body = Object),
        (status = 404, description = "No such flow", body = Object),
        (status = 410, description = "`self_service_flow_expired`, with `use_flow_id`", body = Object),
        (status = 429, description = "An expired flow's successor is over the client's allowance of flows; see Retry-After", body = Object),
    ))]
pub async fn get_flow(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<FlowId>,
) -> Response {
    let mut host = Serve::new(&app, &headers, peer);
    let reply = driver::read(&mut host, q.id.as_deref()).await;
    host.finish(reply)
}

/// `POST /self-service/recovery?flow=`: a submission to a flow (JSON or a
/// form). Called by the pages' handler of the path when `flow` is given.
pub async fn submit(
    app: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    id: String,
    bytes: axum::body::Bytes,
) -> Response {
    let mut host = Serve::new(&app, &headers, peer);
    let reply = driver::submit(&mut host, &id, &bytes).await;
    host.finish(reply)
}

/// The pages' request form: a new flow of theirs, drawn at once.
pub(crate) async fn start_on_page(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    return_to: Option<String>,
) -> Response {
    let mut host = Serve::new(app, headers, peer);
    let reply = driver::start_on_page(&mut host, return_to).await;
    host.finish(reply)
}

/// A request posted from the pages' form without a flow (its CSRF
/// checked by the pages).
pub(crate) async fn request_on_page(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    return_to: Option<String>,
    bytes: &[u8],
) -> Response {
    let mut host = Serve::new(app, headers, peer);
    let reply = driver::request_on_page(&mut host, return_to, bytes).await;
    host.finish(reply)
}

/// The pages' face of a recovery flow, or `None` when `id` is none.
pub(crate) async fn page(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    id: &str,
) -> Option<Response> {
    let mut host = Serve::new(app, headers, peer);
    let reply = driver::page(&mut host, id).await?;
    Some(host.finish(reply))
}

/// What a redemption writes of the self-service flows, on either face,
/// in its own unit of work (`Reclaim::redeem_code_into`): the recovery
/// flow's new state (`passed`, when a flow of the flow API is redeemed)
/// and, when it opened a session, a settings flow carrying 1060001 and the
/// record of how the session began (for `whoami`). The settings flow's id
/// is drawn now, so that the answer can name it.
pub(crate) struct Ending {
    pub settings_id: String,
    step: Box<dyn FnOnce(&Redeemed) -> FlowStep + Send>,
}

impl Ending {
    pub(crate) fn prepare(
        app: &AppState,
        flow_type: FlowType,
        return_to: Option<String>,
        csrf: Option<&str>,
        session_key: String,
        method: &'static str,
        passed: Option<(&Kept, &Record)>,
    ) -> Result<Self, Response> {
        let now = app.now_nanos();
        let until = now.saturating_add(crate::clock::duration_nanos(SESSION_LIFESPAN));
        let url = request_url(app, "/self-service/settings/browser", None);
        let settings_id = draw_id()?;
        let replace = passed.map(|(kept, record)| StoredFlow {
            id: kept.id.clone(),
            expires_at: record.expires_at,
            version: kept.version,
            body: record.to_json(),
        });
        let (id, csrf) = (settings_id.clone(), csrf.map(str::to_string));
        let step = move |redeemed: &Redeemed| {
            let Redemption::Session = redeemed.step else {
                // Handed off: no session, so no settings flow.
                return FlowStep {
                    replace,
                    ..FlowStep::default()
                };
            };
            let identity_id = &redeemed.redemption.identity_id;
            let settings = Record::settings(
                flow_type,
                now,
                &url,
                return_to,
                csrf.as_deref(),
                identity_id,
                Some(until),
            );
            let session = Record::session(identity_id, &session_key, method, now, until);
            FlowStep {
                replace,
                insert: vec![stored(id, &settings)],
                put: vec![stored(sessions::record_id(identity_id), &session)],
            }
        };
        Ok(Self {
            settings_id,
            step: Box::new(step),
        })
    }

    /// The ending of a redemption on the pages' forms (a link's
    /// confirmation, the code form): a browser's settings flow.
    pub(crate) fn on_pages(
        app: &AppState,
        headers: &HeaderMap,
        session_key: &str,
        method: &'static str,
    ) -> Result<Self, Response> {
        let csrf = cookie_token(app, headers);
        let key = session_key.to_string();
        Self::prepare(
            app,
            FlowType::Browser,
            None,
            csrf.as_deref(),
            key,
            method,
            None,
        )
    }

    /// The step, for the redemption to write.
    pub(crate) fn step(self) -> impl FnOnce(&Redeemed) -> FlowStep + Send + 'static {
        self.step
    }
}

fn stored(id: String, record: &Record) -> StoredFlow {
    StoredFlow {
        id,
        expires_at: record.expires_at,
        version: 0,
        body: record.to_json(),
    }
}
