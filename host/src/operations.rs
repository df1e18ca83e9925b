//! The recovery operations as a Rust API: each one runs the component once,
//! inside one storage transaction that commits only if the component
//! returned.

use std::sync::Arc;

use lettre::message::Mailbox;

use wasmtime::Store;

use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, HostState};
use crate::settings::Settings;
use crate::storage::{NewSession, Outcome, QueuedRequest, Storage, UnitOfWork};
use crate::wit::exports::reclaim::recovery::recovery::Guest;
use crate::wit::{IdentityRef, Mailed, RecoveryCode, RecoveryError, RecoveryLink, Redemption};

/// How a recovery email is sent (authentik's email stage).
#[derive(Clone, Copy, Debug, Default)]
pub struct EmailOptions<'a> {
    /// Lifespan of the mailed link, `^[0-9]+(ns|us|ms|s|m|h)$`.
    pub expires_in: Option<&'a str>,
    /// Mail template set (default `recovery-link`).
    pub template: Option<&'a str>,
    /// Subject template replacing the set's.
    pub subject: Option<&'a str>,
    /// Sender replacing the configured one.
    pub from: Option<&'a Mailbox>,
}

/// What a revocation ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Revocation {
    /// Outstanding links and codes revoked.
    pub credentials: u32,
    /// Live recovery sessions ended.
    pub sessions: u32,
}

/// Why an operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The component refused the request; the error says why, in the shape
    /// of the seed APIs' error bodies.
    #[error("{} {}: {}", .0.code, .0.status, .0.message)]
    Refused(RecoveryError),
    /// The component trapped or the host failed; nothing was written.
    #[error("the recovery engine failed: {0:#}")]
    Failed(#[from] anyhow::Error),
}

/// A recovery engine bound to its storage, settings and clock. Its methods
/// block the calling thread until the operation's writes are durable; async
/// code can await the same operations through [`Reclaim::nonblocking`].
#[derive(Clone)]
pub struct Reclaim {
    engine: Engine,
    storage: Arc<dyn Storage>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
}

impl Reclaim {
    /// An engine on the system clock.
    pub fn new(engine: Engine, storage: Arc<dyn Storage>, settings: Settings) -> Self {
        Self {
            engine,
            storage,
            settings: Arc::new(settings),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same engine on another clock (tests freeze and advance time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The engine that runs the component.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The clock the component sees.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Creates a recovery link (Kratos' `POST /admin/recovery/link`).
    pub fn create_link(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<&str>,
    ) -> Result<RecoveryLink, Error> {
        self.nonblocking()
            .create_link(identity, expires_in, return_to)
            .wait()
    }

    /// Creates a recovery code (Kratos' `POST /admin/recovery/code`).
    pub fn create_code(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<&str>,
    ) -> Result<RecoveryCode, Error> {
        self.nonblocking()
            .create_code(identity, expires_in, return_to)
            .wait()
    }

    /// Mails a recovery link (authentik's `recovery_email`).
    pub fn send_recovery_email(
        &self,
        identity: &IdentityRef,
        options: &EmailOptions<'_>,
    ) -> Result<Mailed, Error> {
        self.nonblocking()
            .send_recovery_email(identity, options)
            .wait()
    }

    /// Mails a recovery code with the link to its flow's code page.
    pub fn send_recovery_code(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
    ) -> Result<Mailed, Error> {
        self.nonblocking()
            .send_recovery_code(identity, expires_in)
            .wait()
    }

    /// A self-service request by address; succeeds alike for unknown ones.
    pub fn request_recovery(&self, email: &str, return_to: Option<&str>) -> Result<(), Error> {
        self.nonblocking().request_recovery(email, return_to).wait()
    }

    /// Redeems a link token, once.
    pub fn redeem_link(&self, token: &str) -> Result<Redemption, Error> {
        self.nonblocking().redeem_link(token).wait()
    }

    /// Whether a link token would redeem now; consumes nothing.
    pub fn check_link(&self, token: &str) -> Result<(), Error> {
        self.nonblocking().check_link(token).wait()
    }

    /// Redeems a flow's code, once; wrong codes count against the flow.
    pub fn redeem_code(&self, flow_id: &str, code: &str) -> Result<Redemption, Error> {
        self.nonblocking().redeem_code(flow_id, code).wait()
    }

    /// Revokes an identity's outstanding links and codes and ends its
    /// recovery sessions.
    pub fn revoke(&self, identity: &IdentityRef) -> Result<Revocation, Error> {
        self.nonblocking().revoke(identity).wait()
    }

    /// Queues the "your password was changed" notice.
    pub fn notify_password_changed(&self, identity: &IdentityRef) -> Result<(), Error> {
        self.nonblocking().notify_password_changed(identity).wait()
    }

    /// The same operations for async code: each is handed to the storage
    /// (the SQLite backend runs it on its writer thread) and answers through
    /// a [`Pending`] to await, so no thread of the caller's blocks.
    pub fn nonblocking(&self) -> NonBlocking<'_> {
        NonBlocking(self)
    }

    /// Runs `call` in an instance, inside a unit of work of its own that
    /// commits only if the call returned; answers once that is durable. Mail
    /// it queues goes out from `sender` (the configured sender when none).
    fn submit<T: Send + 'static>(
        &self,
        sender: Option<String>,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<Result<T, RecoveryError>>
        + Send
        + 'static,
    ) -> Pending<T> {
        self.submit_then(sender, call, |answer, _| Ok(answer))
    }

    /// [`Self::submit`], then `finish` with the component's answer, in the
    /// same unit of work: the host's own writes (sessions, the request
    /// queue) stand or fall with the component's.
    fn submit_then<T: Send + 'static, U: Send + 'static>(
        &self,
        sender: Option<String>,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<Result<T, RecoveryError>>
        + Send
        + 'static,
        finish: impl FnOnce(
            Result<T, RecoveryError>,
            &mut dyn UnitOfWork,
        ) -> anyhow::Result<Result<U, RecoveryError>>
        + Send
        + 'static,
    ) -> Pending<U> {
        let engine = self.engine.clone();
        let (settings, clock) = (Arc::clone(&self.settings), Arc::clone(&self.clock));
        Pending(crate::storage::submit(&*self.storage, move |work| {
            let (result, mut work) = engine.run(work, settings, clock, sender, call);
            match result {
                // A refusal stands as written: the component refuses before
                // its first write, or after writes that must stand (a wrong
                // code).
                Ok(answer) => {
                    let answer = finish(answer, &mut *work)?;
                    work.commit()?;
                    Ok(answer)
                }
                Err(trap) => {
                    drop(work);
                    tracing::error!(error = %format!("{trap:#}"), "recovery operation trapped; nothing was written");
                    Err(trap)
                }
            }
        }))
    }
}

/// The recovery operations without blocking (see [`Reclaim::nonblocking`]).
/// Arguments are copied: the operation runs on another thread.
pub struct NonBlocking<'a>(&'a Reclaim);

impl NonBlocking<'_> {
    /// See [`Reclaim::create_link`].
    pub fn create_link(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<&str>,
    ) -> Pending<RecoveryLink> {
        let (identity, expires_in, return_to) = owned(identity, expires_in, return_to);
        self.0.submit(None, move |guest, store| {
            guest.call_create_link(
                store,
                &identity,
                expires_in.as_deref(),
                return_to.as_deref(),
            )
        })
    }

    /// See [`Reclaim::create_code`].
    pub fn create_code(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<&str>,
    ) -> Pending<RecoveryCode> {
        let (identity, expires_in, return_to) = owned(identity, expires_in, return_to);
        self.0.submit(None, move |guest, store| {
            guest.call_create_code(
                store,
                &identity,
                expires_in.as_deref(),
                return_to.as_deref(),
            )
        })
    }

    /// See [`Reclaim::send_recovery_email`].
    pub fn send_recovery_email(
        &self,
        identity: &IdentityRef,
        options: &EmailOptions<'_>,
    ) -> Pending<Mailed> {
        let sender = options.from.map(ToString::to_string);
        let (identity, expires_in, template) =
            owned(identity, options.expires_in, options.template);
        let subject = options.subject.map(str::to_owned);
        self.0.submit(sender, move |guest, store| {
            guest.call_send_recovery_email(
                store,
                &identity,
                expires_in.as_deref(),
                template.as_deref(),
                subject.as_deref(),
            )
        })
    }

    /// See [`Reclaim::send_recovery_code`].
    pub fn send_recovery_code(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
    ) -> Pending<Mailed> {
        let (identity, expires_in, _) = owned(identity, expires_in, None);
        self.0.submit(None, move |guest, store| {
            guest.call_send_recovery_code(store, &identity, expires_in.as_deref())
        })
    }

    /// See [`Reclaim::request_recovery`].
    pub fn request_recovery(&self, email: &str, return_to: Option<&str>) -> Pending<()> {
        let (email, return_to) = (email.to_owned(), return_to.map(str::to_owned));
        self.0.submit(None, move |guest, store| {
            guest.call_request_recovery(store, &email, return_to.as_deref())
        })
    }

    /// See [`Reclaim::redeem_link`].
    pub fn redeem_link(&self, token: &str) -> Pending<Redemption> {
        self.redeem_link_into(token, None)
    }

    /// Redeems a link token and, in the same transaction, opens `session`
    /// for its identity. Either way every other session of the identity
    /// ends: whoever redeemed an older credential loses what it gave them.
    pub fn redeem_link_into(
        &self,
        token: &str,
        session: Option<NewSession>,
    ) -> Pending<Redemption> {
        let token = token.to_owned();
        let now = self.0.clock.now_nanos();
        self.0.submit_then(
            None,
            move |guest, store| guest.call_redeem_link(store, &token),
            move |answer, work| on_success(answer, |r| replace_sessions(r, session, work, now)),
        )
    }

    /// See [`Reclaim::check_link`].
    pub fn check_link(&self, token: &str) -> Pending<()> {
        let token = token.to_owned();
        self.0.submit(None, move |guest, store| {
            guest.call_check_link(store, &token)
        })
    }

    /// See [`Reclaim::redeem_code`].
    pub fn redeem_code(&self, flow_id: &str, code: &str) -> Pending<Redemption> {
        self.redeem_code_into(flow_id, code, None)
    }

    /// Redeems a flow's code and opens `session`, as
    /// [`NonBlocking::redeem_link_into`] does.
    pub fn redeem_code_into(
        &self,
        flow_id: &str,
        code: &str,
        session: Option<NewSession>,
    ) -> Pending<Redemption> {
        let (flow_id, code) = (flow_id.to_owned(), code.to_owned());
        let now = self.0.clock.now_nanos();
        self.0.submit_then(
            None,
            move |guest, store| guest.call_redeem_code(store, &flow_id, &code),
            move |answer, work| on_success(answer, |r| replace_sessions(r, session, work, now)),
        )
    }

    /// Serves a self-service request that waited in the storage's queue:
    /// the request and its removal from the queue are one transaction, so a
    /// request is served once, even across a crash.
    pub fn serve_queued_request(&self, request: QueuedRequest) -> Pending<()> {
        let QueuedRequest {
            id,
            email,
            return_to,
        } = request;
        self.0.submit_then(
            None,
            move |guest, store| guest.call_request_recovery(store, &email, return_to.as_deref()),
            move |answer, work| {
                // Another process sharing the store served it first: this
                // unit's mail must not go out a second time.
                if !work.dequeue_request(id)? {
                    anyhow::bail!("request {id} was already served");
                }
                Ok(answer)
            },
        )
    }

    /// See [`Reclaim::revoke`].
    pub fn revoke(&self, identity: &IdentityRef) -> Pending<Revocation> {
        let identity = identity.clone();
        let now = self.0.clock.now_nanos();
        let by = identity.clone();
        self.0.submit_then(
            None,
            move |guest, store| guest.call_revoke(store, &identity),
            move |answer, work| {
                on_success(answer, |credentials| {
                    // The component found the identity, so the directory has it.
                    let sessions = match work.get(&by)? {
                        Some(identity) => work.end_sessions(&identity.id, now)?,
                        None => 0,
                    };
                    Ok(Revocation {
                        credentials,
                        sessions,
                    })
                })
            },
        )
    }

    /// See [`Reclaim::notify_password_changed`].
    pub fn notify_password_changed(&self, identity: &IdentityRef) -> Pending<()> {
        let identity = identity.clone();
        self.0.submit(None, move |guest, store| {
            guest.call_notify_password_changed(store, &identity)
        })
    }
}

/// An operation's answer, available once its writes are durable:
/// [`Pending::wait`] for it on a thread, or await it in a task.
#[must_use = "the operation's answer, and whether it was durably written"]
pub struct Pending<T>(Outcome<Result<T, RecoveryError>>);

impl<T> Pending<T> {
    /// Blocks the thread until the answer arrives. Async tasks should await
    /// it instead (waiting inside a runtime only blocks that worker).
    pub fn wait(self) -> Result<T, Error> {
        answer(self.0.wait())
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(answer)
    }
}

fn answer<T>(settled: anyhow::Result<Result<T, RecoveryError>>) -> Result<T, Error> {
    match settled {
        Ok(outcome) => outcome.map_err(Error::Refused),
        Err(failed) => Err(Error::Failed(failed)),
    }
}

/// `finish` for the component's success; a refusal passes through.
fn on_success<T, U>(
    answer: Result<T, RecoveryError>,
    finish: impl FnOnce(T) -> anyhow::Result<U>,
) -> anyhow::Result<Result<U, RecoveryError>> {
    match answer {
        Ok(value) => finish(value).map(Ok),
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// After a redemption: the identity's older sessions end, and the new one
/// (if any) opens.
fn replace_sessions(
    redemption: Redemption,
    session: Option<NewSession>,
    work: &mut dyn UnitOfWork,
    now: u64,
) -> anyhow::Result<Redemption> {
    work.end_sessions(&redemption.identity_id, now)?;
    if let Some(session) = session {
        work.open_session(
            &session,
            &redemption.identity_id,
            redemption.return_to.as_deref(),
        )?;
    }
    Ok(redemption)
}

/// An operation runs on the storage's thread: its arguments move there.
fn owned(
    identity: &IdentityRef,
    a: Option<&str>,
    b: Option<&str>,
) -> (IdentityRef, Option<String>, Option<String>) {
    (identity.clone(), a.map(str::to_owned), b.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_secrets;
    use crate::{NewIdentity, SqliteStorage};

    /// Embedders call the blocking API from async code too: it must block
    /// that thread, not panic, and the awaited form must agree with it.
    #[tokio::test(flavor = "current_thread")]
    async fn the_blocking_api_also_works_inside_an_async_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(SqliteStorage::open(dir.path().join("reclaim.db")).unwrap());
        let ann = storage
            .create_identity(
                &NewIdentity {
                    email: Some("ann@example.com".into()),
                    active: true,
                    ..Default::default()
                },
                0,
            )
            .unwrap();
        let secrets = parse_secrets("a-hashing-secret-of-at-least-32-bytes").unwrap();
        let reclaim = Reclaim::new(
            Engine::embedded().unwrap(),
            storage,
            Settings::new("https://id.example.test", secrets),
        );
        let link = reclaim
            .create_link(&IdentityRef::Id(ann.id.clone()), None, None)
            .unwrap();
        let token = link.link.rsplit("token=").next().unwrap();
        let redeemed = reclaim.nonblocking().redeem_link(token).await.unwrap();
        assert_eq!(redeemed.identity_id, ann.id);
        assert!(matches!(reclaim.redeem_link(token), Err(Error::Refused(_))));
    }
}
