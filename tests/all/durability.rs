//! All or nothing: a trapping or over-limit component writes nothing, a
//! refused message leaves no token, and what was committed survives a
//! restart.

use std::sync::Arc;

use anyhow::{Result, bail};
use reclaim::backends::SqliteStorage;
use reclaim::directory::Directory;
use reclaim::mail::{Outbox, QueuedMail};
use reclaim::storage::{
    AssertionRow, AssertionStore, Completed, CredentialStore, EventLog, FlowSteps, IdentityRecord,
    IdentityStore, Job, LiveSession, NewAssertion, NewEvent, NewSession, RequestQueue,
    SessionStore, StoredFlow, UnitOfWork,
};
use reclaim::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialStatus, MailTemplate};
use reclaim::{
    EmailOptions, Error, ErrorKind, Identity, Limits, NewIdentity, Reclaim, Runtime, Storage,
    Templates,
};
use reclaim_tests::{SECRET_A, TestEnv, by_id, token_of};

#[test]
fn committed_links_survive_a_restart() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let link = {
        let storage = Arc::new(SqliteStorage::open(env.db_path()).unwrap());
        let reclaim = env.reclaim_on(storage, env.settings(SECRET_A));
        reclaim
            .create_link(&by_id(&ann), None, None)
            .wait()
            .unwrap()
    };
    let reopened = Arc::new(SqliteStorage::open(env.db_path()).unwrap());
    let reclaim = Reclaim::new(
        Runtime::embedded().unwrap(),
        reopened,
        env.settings(SECRET_A),
    )
    .with_clock(Arc::new(env.clock.clone()));
    assert_eq!(
        reclaim
            .redeem_link(&token_of(&link.link))
            .wait()
            .unwrap()
            .identity_id,
        ann.id
    );
}

/// Storage whose `insert` fails after the operation already wrote other
/// rows: the host must trap the component and discard those writes.
struct FailingInsert(Arc<SqliteStorage>);

struct FailingWork(Box<dyn UnitOfWork>);

impl Storage for FailingInsert {
    fn submit(&self, job: Job) {
        self.0
            .submit(Box::new(move |work: Result<Box<dyn UnitOfWork>>| {
                job(work.map(|work| Box::new(FailingWork(work)) as Box<dyn UnitOfWork>))
            }));
    }
}

impl UnitOfWork for FailingWork {
    fn commit(self: Box<Self>) -> Result<()> {
        self.0.commit()
    }
}

impl CredentialStore for FailingWork {
    fn insert(&mut self, _: &Credential) -> Result<()> {
        bail!("disk full")
    }
    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max: u32,
    ) -> Result<ConsumeOutcome> {
        self.0.consume(keys, kind, now, max)
    }
    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        self.0.find(keys, kind, now)
    }
    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        self.0.code_for_flow(flow_id, now)
    }
    fn record_failed_attempt(&mut self, flow_id: &str, max: u32, now: u64) -> Result<u32> {
        self.0.record_failed_attempt(flow_id, max, now)
    }
    fn identity_failed_attempts(&mut self, identity_id: &str, since: u64) -> Result<u32> {
        self.0.identity_failed_attempts(identity_id, since)
    }
    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        self.0.revoke_identity(identity_id, kind, now)
    }
}

impl Directory for FailingWork {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        self.0.get_by_id(id)
    }
    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        self.0.get_by_pk(pk)
    }
    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        self.0.find_by_email(email)
    }
}

impl AssertionStore for FailingWork {
    fn open_assertion(&mut self, assertion: &NewAssertion) -> Result<()> {
        self.0.open_assertion(assertion)
    }
    fn use_assertion(&mut self, key: &str, now: u64) -> Result<Option<AssertionRow>> {
        self.0.use_assertion(key, now)
    }
    fn assertion(&mut self, key: &str) -> Result<Option<AssertionRow>> {
        self.0.assertion(key)
    }
    fn purge_assertions(&mut self, before: u64) -> Result<u64> {
        self.0.purge_assertions(before)
    }
}

impl EventLog for FailingWork {
    fn record_event(&mut self, event: &NewEvent) -> Result<()> {
        self.0.record_event(event)
    }
}

impl Outbox for FailingWork {
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()> {
        self.0.enqueue(mail)
    }
}

impl SessionStore for FailingWork {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
        address_key: Option<&str>,
    ) -> Result<()> {
        self.0
            .open_session(session, identity_id, return_to, address_key)
    }
    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        self.0.end_sessions(identity_id, now)
    }
    fn live_session(
        &mut self,
        identity_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<LiveSession>> {
        self.0.live_session(identity_id, key, now)
    }
    fn complete_session(
        &mut self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>> {
        self.0
            .complete_session(identity_id, key, password_hash, now)
    }
}

impl IdentityStore for FailingWork {
    fn identity_record_in(&mut self, id: &str) -> Result<Option<IdentityRecord>> {
        self.0.identity_record_in(id)
    }
    fn insert_identity(&mut self, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord> {
        self.0.insert_identity(id, new, now)
    }
    fn replace_identity(
        &mut self,
        id: &str,
        new: &NewIdentity,
        now: u64,
    ) -> Result<Option<IdentityRecord>> {
        self.0.replace_identity(id, new, now)
    }
    fn delete_identity(&mut self, id: &str) -> Result<bool> {
        self.0.delete_identity(id)
    }
}

impl FlowSteps for FailingWork {
    fn save_flow_step(
        &mut self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Result<bool> {
        self.0.save_flow_step(replace, insert, put)
    }
}

impl RequestQueue for FailingWork {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        self.0.dequeue_request(id)
    }
}

#[test]
fn a_trap_after_writes_leaves_the_database_unchanged() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let earlier = env
        .reclaim()
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let before = env.snapshot();

    // Sending mail queues the message and revokes the earlier link before it
    // inserts the new one; the insert fails, the component traps.
    let failing = env.reclaim_on(
        Arc::new(FailingInsert(env.storage.clone())),
        env.settings(SECRET_A),
    );
    match failing
        .send_recovery_email(&by_id(&ann), &EmailOptions::default())
        .wait()
    {
        Err(Error::Failed(e)) => assert!(format!("{e:#}").contains("disk full"), "{e:#}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(
        env.snapshot(),
        before,
        "the queued mail and the revocation were rolled back"
    );
    assert!(
        env.reclaim()
            .redeem_link(&token_of(&earlier.link))
            .wait()
            .is_ok(),
        "the earlier link still works"
    );
}

#[test]
fn an_over_limit_component_is_stopped_and_writes_nothing() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let _earlier = env
        .reclaim()
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let before = env.snapshot();

    let limits = Limits {
        max_memory_bytes: 4 << 20,
        ..Limits::default()
    };
    let engine = Runtime::new(reclaim::runtime::EMBEDDED_COMPONENT, limits).unwrap();
    let mut settings = env.settings(SECRET_A);
    // A template that renders about 20 MB: over the 4 MiB memory limit.
    settings.templates = templates_with_body(
        "{% for i in range(20000) %}{% for j in range(10) %}{{ link }}{% endfor %}{% endfor %}",
    );
    let reclaim = Reclaim::new(engine.clone(), env.storage.clone(), settings)
        .with_clock(Arc::new(env.clock.clone()));
    assert!(matches!(
        reclaim
            .send_recovery_email(&by_id(&ann), &EmailOptions::default())
            .wait(),
        Err(Error::Failed(_))
    ));
    assert_eq!(env.snapshot(), before);

    // The engine itself is unharmed: the next operation in a fresh instance works.
    let fine = Reclaim::new(engine, env.storage.clone(), env.settings(SECRET_A))
        .with_clock(Arc::new(env.clock.clone()));
    assert!(fine.create_link(&by_id(&ann), None, None).wait().is_ok());
}

fn templates_with_body(text: &str) -> Templates {
    let dir = tempfile::tempdir().unwrap();
    let template = MailTemplate {
        subject: "Recover".into(),
        text_body: text.into(),
        html_body: "<p>{{ link }}</p>".into(),
    };
    std::fs::write(dir.path().join("recovery-link.subject"), &template.subject).unwrap();
    std::fs::write(dir.path().join("recovery-link.txt"), &template.text_body).unwrap();
    std::fs::write(dir.path().join("recovery-link.html"), &template.html_body).unwrap();
    Templates::load(dir.path()).unwrap()
}

#[test]
fn a_refused_message_leaves_no_token_behind() {
    let env = TestEnv::new();
    let broken = env.identity_with(NewIdentity {
        email: Some("ann@@example.com".into()),
        active: true,
        ..Default::default()
    });
    match env
        .reclaim()
        .send_recovery_email(&by_id(&broken), &EmailOptions::default())
        .wait()
    {
        Err(Error::Refused(e)) => assert_eq!((e.kind, e.code), (ErrorKind::MailRejected, 400)),
        other => panic!("{other:?}"),
    }
    assert_eq!(env.count("SELECT count(*) FROM credentials"), 0);
    assert_eq!(env.count("SELECT count(*) FROM outbox"), 0);
}

#[test]
fn identities_without_email_or_disabled_get_no_mail_and_nothing_is_stored() {
    let env = TestEnv::new();
    let silent = env.identity(None, None);
    let off = env.identity_with(NewIdentity {
        email: Some("off@example.com".into()),
        active: false,
        ..Default::default()
    });
    let reclaim = env.reclaim();
    match reclaim
        .send_recovery_email(&by_id(&silent), &EmailOptions::default())
        .wait()
    {
        Err(Error::Refused(e)) => {
            assert_eq!(e.kind, ErrorKind::IdentityWithoutEmail);
            assert_eq!(e.message, "User does not have an email address set.");
        }
        other => panic!("{other:?}"),
    }
    match reclaim
        .send_recovery_email(&by_id(&off), &EmailOptions::default())
        .wait()
    {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::IdentityInactive),
        other => panic!("{other:?}"),
    }
    assert_eq!(env.count("SELECT count(*) FROM credentials"), 0);
    assert_eq!(env.count("SELECT count(*) FROM outbox"), 0);
}

/// A database of the first release (outbox without `flow_id`, sessions
/// keyed by cookie, no request queue) opens and upgrades in place,
/// keeping its mail.
#[test]
fn a_first_release_database_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reclaim.db");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE outbox (
                 id TEXT PRIMARY KEY, recipient TEXT NOT NULL, to_name TEXT, subject TEXT NOT NULL,
                 text_body TEXT NOT NULL, html_body TEXT NOT NULL, template TEXT NOT NULL, sender TEXT,
                 status TEXT NOT NULL DEFAULT 'queued', queued_at INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt_at INTEGER,
                 claimed_by TEXT, lease_until INTEGER, sent_at INTEGER, updated_at INTEGER);
             CREATE TABLE recovery_sessions (
                 key TEXT PRIMARY KEY, identity_id TEXT NOT NULL, return_to TEXT,
                 expires_at INTEGER NOT NULL, used_at INTEGER) WITHOUT ROWID;
             INSERT INTO outbox (id, recipient, subject, text_body, html_body, template, queued_at)
             VALUES ('m1', 'ann@example.com', 'Hi', 't', 'h', 'password-changed', 1);",
        )
        .unwrap();
    }
    for _ in 0..2 {
        drop(reclaim::backends::SqliteStorage::open(&path).expect("the old database opens"));
    }
    let upgraded = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = upgraded
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    // Seven migrations: the issue-10 tables, the rate-limit counters,
    // request claims, credentials' addresses with the identity admin API's
    // columns, the hand-off, events and webhook deliveries, the address key
    // of sessions and assertions, and the flow API's flows.
    assert_eq!(version, 7, "migrated once, however often opened");
    let counters: i64 = upgraded
        .query_row("SELECT count(*) FROM rate_limits", [], |r| r.get(0))
        .unwrap();
    assert_eq!(counters, 0);
    let kept: (String, Option<String>) = upgraded
        .query_row("SELECT id, flow_id FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(kept, ("m1".to_string(), None));
    let queued: i64 = upgraded
        .query_row("SELECT count(*) FROM recovery_requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 0);
    let events: i64 = upgraded
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 0);
    let columns: Vec<String> = upgraded
        .prepare("SELECT name FROM pragma_table_info('recovery_sessions') ORDER BY cid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        columns,
        [
            "identity_id",
            "key",
            "return_to",
            "expires_at",
            "address_key"
        ]
    );
}

#[test]
fn addresses_written_without_a_normal_form_get_one_at_open_and_a_twin_gets_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reclaim.db");
    drop(SqliteStorage::open(&path).unwrap());
    {
        // As a host that computes no normal form writes them (the Python
        // and Node.js packages): one mailbox twice, in two spellings.
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "INSERT INTO identities (id, email, active, created_at) VALUES
                 ('first', 'U@kexample.com', 1, 1),
                 ('twin', 'u@\u{212A}example.com', 1, 2),
                 ('other', 'w@bücher.example', 1, 3);",
        )
        .unwrap();
    }
    let storage = SqliteStorage::open(&path).unwrap();
    let find = |email: &'static str| {
        reclaim::storage::transact(&storage, move |mut work| work.find_by_email(email))
            .unwrap()
            .map(|i| i.id)
    };
    assert_eq!(find("u@kexample.com").as_deref(), Some("first"));
    assert_eq!(
        find("u@\u{212A}example.com").as_deref(),
        Some("first"),
        "the twin is not found in its owner's place"
    );
    assert_eq!(find("w@xn--bcher-kva.example").as_deref(), Some("other"));
    let db = rusqlite::Connection::open(&path).unwrap();
    let twin: Option<String> = db
        .query_row(
            "SELECT email_normal FROM identities WHERE id = 'twin'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(twin, None);
}

/// Before a guest that never returns: an identity holding a live link, what
/// the database holds, and the `deadline` of guest time to run under.
struct BeforeADeadline {
    env: TestEnv,
    ann: reclaim::Identity,
    link: reclaim::RecoveryLink,
    before: Vec<String>,
    deadline: std::time::Duration,
}

impl BeforeADeadline {
    fn new(deadline: std::time::Duration) -> Self {
        let env = TestEnv::new();
        let ann = env.identity(Some("ann@example.com"), None);
        let link = env
            .reclaim()
            .create_link(&by_id(&ann), None, None)
            .wait()
            .unwrap();
        let before = env.snapshot();
        Self {
            env,
            ann,
            link,
            before,
            deadline,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            operation_deadline: self.deadline,
            ..Limits::default()
        }
    }

    /// Nothing was written, and the live link still redeems through `reclaim`.
    fn assert_unharmed(&self, reclaim: &Reclaim) {
        assert_eq!(
            self.env.snapshot(),
            self.before,
            "nothing of it was written"
        );
        assert!(
            reclaim
                .redeem_link(&token_of(&self.link.link))
                .wait()
                .is_ok()
        );
    }
}

/// Runs `operation` on a thread and asserts that the deadline stopped it.
/// The two-minute wait is a bound on the test, not a timing claim: without
/// a deadline the call would never return, and the test would hang.
fn assert_stopped_at_deadline<T: std::fmt::Debug + Send + 'static>(
    operation: impl FnOnce() -> Result<T, Error> + Send + 'static,
) {
    let (done, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(operation());
    });
    match answer.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(Err(Error::Failed(e))) => assert!(format!("{e:#}").contains("deadline"), "{e:#}"),
        other => panic!("expected the deadline to stop the operation, got {other:?}"),
    }
}

/// A template override that loops for ever (10^15 iterations) is stopped at
/// the operation's deadline: the operation fails, writes nothing, and the
/// runtime goes on serving the next one.
#[test]
fn a_looping_template_is_stopped_at_the_deadline_and_writes_nothing() {
    let at = BeforeADeadline::new(std::time::Duration::from_millis(300));
    let runtime = Runtime::new(reclaim::runtime::EMBEDDED_COMPONENT, at.limits()).unwrap();
    let mut settings = at.env.settings(SECRET_A);
    settings.templates = templates_with_body(
        "{% for i in range(100000) %}{% for j in range(100000) %}\
         {% for k in range(100000) %}{% endfor %}{% endfor %}{% endfor %}{{ link }}",
    );
    let looping = at.env.reclaim_on_runtime(runtime.clone(), settings);
    let who = by_id(&at.ann);
    assert_stopped_at_deadline(move || {
        looping
            .send_recovery_email(&who, &EmailOptions::default())
            .wait()
    });
    at.assert_unharmed(
        &at.env
            .reclaim_on_runtime(runtime, at.env.settings(SECRET_A)),
    );
}

/// The test-only guest whose every export spins in its own code: the
/// built component, for `wasm32-wasip2`, built once per test run.
fn spinning_guest() -> &'static [u8] {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        // The target directory host/build.rs builds the components in: the
        // dependencies they share are built once.
        let target = root.join("target").join("component");
        let status = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .current_dir(root)
            .args([
                "build",
                "--package",
                "reclaim-looping-guest",
                "--target",
                "wasm32-wasip2",
            ])
            .args(["--release", "--locked", "--quiet", "--target-dir"])
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the looping guest failed");
        std::fs::read(target.join("wasm32-wasip2/release/reclaim_looping_guest.wasm")).unwrap()
    })
}

/// A guest that spins in its own code (no template, no import) is stopped
/// at the deadline for every operation it is given; nothing is written, and
/// the real engine serves the same storage at once.
#[test]
fn a_guest_that_spins_is_stopped_at_the_deadline_and_writes_nothing() {
    let at = BeforeADeadline::new(std::time::Duration::from_millis(200));
    let spinning = at.env.reclaim_on_runtime(
        Runtime::new(spinning_guest(), at.limits()).unwrap(),
        at.env.settings(SECRET_A),
    );
    let (reclaim, who) = (spinning.clone(), by_id(&at.ann));
    assert_stopped_at_deadline(move || reclaim.create_link(&who, None, None).wait());
    let (reclaim, token) = (spinning.clone(), token_of(&at.link.link));
    assert_stopped_at_deadline(move || reclaim.redeem_link(&token).wait());
    assert_stopped_at_deadline(move || spinning.request_recovery("ann@example.com", None).wait());
    at.assert_unharmed(&at.env.reclaim());
}
