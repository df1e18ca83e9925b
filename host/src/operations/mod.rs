//! The recovery operations as a Rust API: each one runs the component once,
//! inside one unit of work that commits only if the component returned, and
//! answers with a [`Pending`]: `.wait()` for it on a thread, or `.await` it.
//! Issuing (`issue`) and redeeming (`redeem`) each have a file.

mod issue;
mod redeem;

use std::sync::Arc;

use lettre::message::Mailbox;
use wasmtime::Store;

use crate::clock::{Clock, SystemClock};
use crate::runtime::{HostState, Runtime};
use crate::settings::Settings;
use crate::storage::{Pending, Storage, UnitOfWork};
use crate::wit::RecoveryError;
use crate::wit::exports::reclaim::recovery::recovery::Guest;

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

/// The recovery operations bound to their storage, settings and clock.
/// Every operation is handed to the storage (the SQLite backend runs it on
/// its writer thread) and answers through a [`Pending`].
#[derive(Clone)]
pub struct Reclaim {
    runtime: Runtime,
    storage: Arc<dyn Storage>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
}

impl Reclaim {
    /// The operations on the system clock.
    pub fn new(runtime: Runtime, storage: Arc<dyn Storage>, settings: Settings) -> Self {
        Self {
            runtime,
            storage,
            settings: Arc::new(settings),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same operations on another clock (tests freeze and advance time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The runtime that runs the component.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
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

    /// Runs `call` in an instance, inside a unit of work of its own that
    /// commits only if the call returned; answers once that is durable. Mail
    /// it queues goes out from `sender` (the configured sender when none).
    fn submit<T: Send + 'static>(
        &self,
        sender: Option<String>,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<Result<T, RecoveryError>>
        + Send
        + 'static,
    ) -> Pending<T, Error> {
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
    ) -> Pending<U, Error> {
        let runtime = self.runtime.clone();
        let (settings, clock) = (Arc::clone(&self.settings), Arc::clone(&self.clock));
        crate::storage::submit(&*self.storage, move |work| {
            let (result, mut work) = runtime.run(work, settings, clock, sender, call);
            match result {
                // Commit on the component's answer, discard on a trap: this
                // is the one place that decides it. A refusal stands as
                // written: the component refuses before its first write, or
                // after writes that must stand (a wrong code).
                Ok(answer) => {
                    let answer = finish(answer, &mut *work)?;
                    work.commit()?;
                    answer.map_err(Error::Refused)
                }
                Err(trap) => {
                    drop(work);
                    tracing::error!(error = %format!("{trap:#}"), "recovery operation trapped; nothing was written");
                    Err(Error::Failed(trap))
                }
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_secrets;
    use crate::storage::{Location, open};
    use crate::{IdentityRef, NewIdentity};

    /// Embedders wait for answers from async code too: waiting must block
    /// that thread, not panic, and the awaited form must agree with it.
    #[tokio::test(flavor = "current_thread")]
    async fn waiting_also_works_inside_an_async_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(&Location::Sqlite {
            path: dir.path().join("reclaim.db"),
            durability: crate::storage::Durability::Full,
        })
        .unwrap();
        let ann = backend
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
            Runtime::embedded().unwrap(),
            backend,
            Settings::new("https://id.example.test", secrets),
        );
        let link = reclaim
            .create_link(&IdentityRef::Id(ann.id.clone()), None, None)
            .wait()
            .unwrap();
        let token = link.link.rsplit("token=").next().unwrap();
        let redeemed = reclaim.redeem_link(token).await.unwrap();
        assert_eq!(redeemed.identity_id, ann.id);
        assert!(matches!(
            reclaim.redeem_link(token).wait(),
            Err(Error::Refused(_))
        ));
    }
}
