//! Kratos' recovery flows at the edge: `reclaim_wire::flows::driver`, the
//! copy `reclaim serve` runs, over files under `/data/self-service-flows`
//! and the engine's imports. The edge keeps no sessions, so a flow ends
//! with `redirect_browser_to` the allowed `return_to`, or the flow's own
//! page, which says the account is recovered; it keeps no rate limits, and
//! a request is served at once rather than from a paced queue.
//!
//! A flow is a directory of versions, `<id>/<version>.json`. A step writes
//! the next version by hard-linking a finished file to its name, which
//! fails if another step took that version first: two requests can't both
//! move a flow on, and a reader never sees half a file. Flows that expired
//! an hour ago are purged by the first new flow of each minute.

use std::future::Future;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use http::header::{HeaderValue, SET_COOKIE};
use minijinja::context;
use reclaim_wire::answer::Answer;
use reclaim_wire::flows::driver::{self, Checked, Face, FlowConfig, FlowHost, Kept};
use reclaim_wire::flows::settings::Ending;
use reclaim_wire::flows::{Record, ui_location};
use reclaim_wire::kratos::ErrorGeneric;
use reclaim_wire::refusal::{Failure, Outcome};
use reclaim_wire::routes::Route;
use reclaim_wire::{checks, csrf};
use serde_json::Value;

use crate::engine::{self, wired};
use crate::reply::Reply;
use crate::request::Request;
use crate::settings::{self, Settings};

/// Beside the engine's files (whose `flows/` are its code flows).
const FLOWS_DIR: &str = "/data/self-service-flows";

/// Runs a driver's future. Every future of this host is ready when first
/// polled (the edge's I/O is synchronous), so one poll ends it and no
/// executor is needed.
fn at_once<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("the edge's flow host never waits"),
    }
}

/// This area's answer to `route`, if it is one of its routes (a
/// submission and the UI's page come through the pages' path).
pub fn answer(route: Route, request: &Request) -> Option<Reply> {
    let answer = match route {
        Route::RecoveryFlowBrowser => create_browser,
        Route::RecoveryFlowApi => create_api,
        Route::RecoveryFlows => read,
        _ => return None,
    };
    Some(answer(request, &Settings::load()))
}

/// `GET /self-service/recovery/browser`.
pub fn create_browser(request: &Request, settings: &Settings) -> Reply {
    let mut host = Edge::new(request, settings);
    let reply = at_once(driver::create_browser(&mut host, return_to(request)));
    host.finish(reply)
}

/// `GET /self-service/recovery/api`.
pub fn create_api(request: &Request, settings: &Settings) -> Reply {
    let mut host = Edge::new(request, settings);
    let reply = at_once(driver::create_api(&mut host, return_to(request)));
    host.finish(reply)
}

/// `GET /self-service/recovery/flows?id=`.
pub fn read(request: &Request, settings: &Settings) -> Reply {
    let id = query(request, "id");
    let mut host = Edge::new(request, settings);
    let reply = at_once(driver::read(&mut host, id.as_deref()));
    host.finish(reply)
}

/// `POST /self-service/recovery?flow=`.
pub fn submit(request: &Request, settings: &Settings, id: &str) -> Reply {
    let mut host = Edge::new(request, settings);
    let reply = at_once(driver::submit(&mut host, id, &request.body));
    host.finish(reply)
}

/// The pages' request form: a new flow of theirs, drawn at once.
pub fn start_on_page(request: &Request, settings: &Settings) -> Reply {
    let mut host = Edge::new(request, settings);
    let reply = at_once(driver::start_on_page(&mut host, return_to(request)));
    host.finish(reply)
}

/// A request posted from the pages' form without a flow (its CSRF checked
/// by the pages).
pub fn request_on_page(request: &Request, settings: &Settings) -> Reply {
    let mut host = Edge::new(request, settings);
    let reply = at_once(driver::request_on_page(
        &mut host,
        return_to(request),
        &request.body,
    ));
    host.finish(reply)
}

/// The recovery UI's page of flow `id`, or `None` when it is none.
pub fn page(request: &Request, settings: &Settings, id: &str) -> Option<Reply> {
    let mut host = Edge::new(request, settings);
    let reply = at_once(driver::page(&mut host, id))?;
    Some(host.finish(reply))
}

pub fn query(request: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn return_to(request: &Request) -> Option<String> {
    query(request, "return_to")
}

/// One request to the flows at the edge, with the settings it was read
/// with (the file once, the environment once).
struct Edge<'a> {
    request: &'a Request,
    settings: &'a Settings,
    recovery_ui_url: String,
    lifespan_ns: u64,
    continue_with: bool,
    cookies: Vec<HeaderValue>,
}

impl<'a> Edge<'a> {
    fn new(request: &'a Request, settings: &'a Settings) -> Self {
        Self {
            request,
            settings,
            recovery_ui_url: settings::recovery_ui_url(&settings.public_url),
            lifespan_ns: settings::flow_lifespan_ns(),
            continue_with: settings::use_continue_with_transitions(),
            cookies: Vec::new(),
        }
    }

    /// `reply` with the cookies this request earned.
    fn finish(self, mut reply: Reply) -> Reply {
        reply
            .headers
            .extend(self.cookies.into_iter().map(|c| (SET_COOKIE, c)));
        reply
    }

    fn refused(&self, outcome: &Outcome) -> Reply {
        Reply::kratos(&ErrorGeneric::from_outcome(outcome, &self.request.id))
    }

    fn failed(&self) -> Reply {
        self.refused(&Outcome::Failed(Failure::Failed))
    }
}

impl FlowHost for Edge<'_> {
    type Reply = Reply;

    fn config(&self) -> FlowConfig<'_> {
        FlowConfig {
            public_url: &self.settings.public_url,
            recovery_ui_url: &self.recovery_ui_url,
            lifespan_ns: self.lifespan_ns,
            max_code_attempts: self
                .settings
                .max_code_attempts
                .unwrap_or(reclaim_wire::flows::DEFAULT_MAX_CODE_ATTEMPTS),
            continue_with: self.continue_with,
        }
    }

    fn now(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
    }

    fn request_id(&self) -> String {
        self.request.id.clone()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    fn answer(&mut self, answer: Answer) -> Reply {
        Reply::from(answer)
    }

    fn see_other(&mut self, location: &str) -> Reply {
        Reply::see_other(location)
    }

    fn page(&mut self, status: StatusCode, flow: Value, title: &str) -> Reply {
        crate::pages::render(status, "flow.html", context! { flow, title })
    }

    fn allowed_return_to(&self, given: &str) -> Option<String> {
        checks::allowed_return_to(&settings::allowed_return_urls(), given)
    }

    fn cookie_token(&self) -> Option<String> {
        self.settings.csrf.cookie_token(&self.request.headers)
    }

    fn issue_csrf(&mut self) -> Result<String, Reply> {
        let (token, cookie) = self
            .settings
            .csrf
            .issue(&self.request.headers)
            .map_err(|_| self.failed())?;
        if let Some(cookie) = cookie {
            let value = csrf::private_cookie(
                csrf::COOKIE_NAME,
                &cookie,
                reclaim_wire::CSRF_PATH,
                None,
                self.settings.secure_cookies,
            );
            self.cookies
                .push(HeaderValue::from_str(&value).map_err(|_| self.failed())?);
        }
        Ok(token)
    }

    fn csrf_verified(&self, token: Option<&str>) -> bool {
        self.settings.csrf.verify(&self.request.headers, token)
    }

    /// The edge keeps no counters (the README says so).
    async fn admit_flow(&mut self, _face: Face) -> Result<(), Reply> {
        Ok(())
    }

    async fn has_session(&mut self) -> Result<bool, Reply> {
        Ok(false)
    }

    async fn load(&mut self, id: &str) -> Result<Option<Kept>, Reply> {
        load(id).map_err(|_| self.failed())
    }

    async fn insert(&mut self, record: &Record) -> Result<String, Reply> {
        insert(record, self.lifespan_ns).map_err(|_| self.failed())
    }

    async fn replace(&mut self, kept: &Kept, record: &Record) -> Result<bool, Reply> {
        replace(kept, record).map_err(|_| self.failed())
    }

    async fn send(
        &mut self,
        email: &str,
        method: &str,
        return_to: Option<&str>,
        _face: Face,
    ) -> Result<Option<String>, Reply> {
        let sent = if method == "code" {
            let flow = uuid::Uuid::new_v4().hyphenated().to_string();
            wired(engine::request_recovery_code(email, &flow, return_to)).map(|()| Some(flow))
        } else {
            wired(engine::request_recovery(email, return_to)).map(|()| None)
        };
        sent.map_err(|outcome| self.refused(&outcome))
    }

    async fn check(
        &mut self,
        kept: &Kept,
        passed: &Record,
        code_flow: &str,
        code: &str,
        _csrf: Option<&str>,
    ) -> Result<Checked, Reply> {
        match wired(engine::redeem_code(code_flow, code)) {
            Ok(redemption) => {
                // The redemption is the engine's, once; a flow moved on
                // meanwhile by another request still ends here.
                replace(kept, passed).map_err(|_| self.failed())?;
                let allowed = settings::allowed_return_urls();
                let location = redemption
                    .return_to
                    .or_else(|| passed.return_to.clone())
                    .and_then(|r| checks::allowed_return_to(&allowed, &r))
                    .unwrap_or_else(|| ui_location(&self.recovery_ui_url, &kept.id));
                Ok(Checked::Passed(Ending::Redirect { location }))
            }
            Err(Outcome::Refused(r)) if Record::is_wrong_code(r.kind) => Ok(Checked::Wrong(r.kind)),
            Err(outcome) => Err(self.refused(&outcome)),
        }
    }
}

/// Where flow `id`'s versions are; `None` for an id that is no UUID (which
/// names no flow, and no path outside the flows).
fn flow_dir(id: &str) -> Option<PathBuf> {
    let id = uuid::Uuid::parse_str(id).ok()?;
    Some(Path::new(FLOWS_DIR).join(id.hyphenated().to_string()))
}

fn version_file(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("{version}.json"))
}

/// The newest version of flow `id`.
fn load(id: &str) -> io::Result<Option<Kept>> {
    let Some(dir) = flow_dir(id) else {
        return Ok(None);
    };
    // The version before a flow's newest is deleted by the step after it,
    // which may come between the listing and the read: list again.
    for _ in 0..8 {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let newest = entries
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .max();
        let Some(version) = newest else {
            return Ok(None);
        };
        match std::fs::read_to_string(version_file(&dir, version)) {
            Ok(text) => {
                return Ok(Record::from_json(&text).map(|record| Kept {
                    id: id.to_string(),
                    version,
                    record,
                }));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "a flow replaced faster than it can be read",
    ))
}

/// Writes `record` to a file of its own in `dir`, then links it to
/// `version`: `Ok(false)` when that version exists already.
fn write_version(dir: &Path, version: u64, record: &Record) -> io::Result<bool> {
    let draft = dir.join(format!("draft-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&draft, record.to_json())?;
    let linked = std::fs::hard_link(&draft, version_file(dir, version));
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn insert(record: &Record, lifespan_ns: u64) -> io::Result<String> {
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let dir = flow_dir(&id).expect("a UUID");
    std::fs::create_dir_all(&dir)?;
    write_version(&dir, 0, record)?;
    purge_now_and_then(lifespan_ns);
    Ok(id)
}

/// How long an expired flow is kept, as `reclaim serve` keeps them: a late
/// read still learns that it expired, and which flow took its place.
const KEPT_EXPIRED: Duration = Duration::from_secs(60 * 60);

/// At most one purge a minute: the first insert after it finds the mark
/// older than that purges (an instance lives for one request, so the mark
/// is the only memory between them).
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Removes the flows that expired more than [`KEPT_EXPIRED`] ago. A flow
/// directory's time is its last step's, which is before its expiry: one
/// older than the lifespan and [`KEPT_EXPIRED`] together is such a flow.
fn purge_now_and_then(lifespan_ns: u64) {
    let mark = Path::new(FLOWS_DIR).join(".purged");
    let due = std::fs::metadata(&mark)
        .and_then(|m| m.modified())
        .map_or(true, |at| {
            at.elapsed().map_or(true, |age| age >= PURGE_EVERY)
        });
    if !due || std::fs::write(&mark, b"").is_err() {
        return;
    }
    let kept = Duration::from_nanos(lifespan_ns) + KEPT_EXPIRED;
    let Some(cutoff) = SystemTime::now().checked_sub(kept) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(FLOWS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let is_flow = entry.file_type().is_ok_and(|t| t.is_dir());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| at < cutoff);
        if is_flow && old {
            // Another purge may take it first: nothing to do then.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn replace(kept: &Kept, record: &Record) -> io::Result<bool> {
    let dir = flow_dir(&kept.id).expect("a kept flow's id");
    let replaced = write_version(&dir, kept.version + 1, record)?;
    if replaced && kept.version > 0 {
        // Readers take the newest. The version read here may still be in
        // a reader's hands (it was the newest a moment ago); the one
        // before it is of no more use.
        let _ = std::fs::remove_file(version_file(&dir, kept.version - 1));
    }
    Ok(replaced)
}
