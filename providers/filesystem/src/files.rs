//! The files under `/data`, read and written whole; a write goes to a
//! temporary name of its own first and is renamed into place, so a reader
//! never sees half a file.
//!
//! Many instances work on the directory at once (`wasmtime serve` starts
//! one per request, and wasi:filesystem has no locks), so every change that
//! must not be lost or made twice is one atomic filesystem step: a rename
//! for a credential's state, an exclusive create for each wrong code, a
//! hard link for the first settings.

use std::cell::RefCell;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::bindings::exports::reclaim::recovery::mailer::Message;
use crate::bindings::exports::reclaim::recovery::storage::{Credential, CredentialKind};
use crate::bindings::reclaim::recovery::types::Identity;

mod settings;

/// How long before the window a logged wrong code is kept: 30 days, far
/// beyond any window the settings take.
const FORGET_FAILURES_AFTER: u64 = 30 * 24 * 3_600_000_000_000;

const ROOT: &str = "/data";

/// A credential as stored in `credentials/<key>.json` (the key is the name).
#[derive(Serialize, Deserialize)]
pub struct StoredCredential {
    kind: String,
    pub identity_id: String,
    pub flow_id: String,
    issued_at: u64,
    pub expires_at: u64,
    return_to: Option<String>,
    /// Absent in files written before credentials carried it.
    #[serde(default)]
    address_key: Option<String>,
}

impl From<Credential> for StoredCredential {
    fn from(c: Credential) -> Self {
        Self {
            kind: match c.kind {
                CredentialKind::Link => "link".into(),
                CredentialKind::Code => "code".into(),
            },
            identity_id: c.identity_id,
            flow_id: c.flow_id,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            return_to: c.return_to,
            address_key: c.address_key,
        }
    }
}

impl StoredCredential {
    pub fn kind(&self) -> CredentialKind {
        if self.kind == "code" {
            CredentialKind::Code
        } else {
            CredentialKind::Link
        }
    }

    pub fn into_credential(self, key: &str) -> Credential {
        Credential {
            key: key.to_string(),
            kind: self.kind(),
            identity_id: self.identity_id,
            flow_id: self.flow_id,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            return_to: self.return_to,
            address_key: self.address_key,
        }
    }
}

/// Which file a credential is in: consuming renames `<key>.json` to
/// `<key>.used`, revoking to `<key>.revoked`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// `<key>.json`: neither used nor revoked (it may have expired).
    Live,
    Used,
    Revoked,
}

/// An identity in `identities.json`.
#[derive(Deserialize)]
struct StoredIdentity {
    id: String,
    pk: i64,
    email: Option<String>,
    display_name: Option<String>,
    locale: Option<String>,
    #[serde(default = "active_by_default")]
    active: bool,
}

fn active_by_default() -> bool {
    true
}

/// The preopened data directory.
pub struct Data {
    root: PathBuf,
}

impl Data {
    /// The directory, its layout made once per instance (one request at
    /// the edge): an operation calls several imports, and each used to
    /// recreate the directories. Made by every instance still: an operator
    /// may move `outbox/` away to relay its mail.
    pub fn open() -> &'static Self {
        static DATA: OnceLock<Data> = OnceLock::new();
        DATA.get_or_init(|| {
            let data = Self {
                root: PathBuf::from(ROOT),
            };
            for dir in [
                "credentials",
                "flows",
                "attempts",
                "outbox",
                "by-identity",
                "identity-attempts",
            ] {
                fs::create_dir_all(data.root.join(dir))
                    .unwrap_or_else(|e| panic!("{ROOT}/{dir}: {e} (run with --dir DIR::/data)"));
            }
            data.index_earlier_credentials();
            data
        })
    }

    /// Directories written before `by-identity/` existed: every credential
    /// gets its index entry, then `by-identity/.complete` says so. Any
    /// number of instances may do this at once (each entry is created
    /// exclusively, and created again is no harm); a credential inserted
    /// meanwhile indexes itself.
    fn index_earlier_credentials(&self) {
        const COMPLETE: &str = "by-identity/.complete";
        if self.exists(COMPLETE) {
            return;
        }
        let entries = fs::read_dir(self.root.join("credentials"))
            .unwrap_or_else(|e| panic!("listing credentials: {e}"));
        for entry in entries {
            let name = entry
                .unwrap_or_else(|e| panic!("listing credentials: {e}"))
                .file_name();
            let name = name.to_string_lossy();
            let Some((key, _state)) = name.split_once('.') else {
                continue;
            };
            if let Some((stored, _)) = self.credential(key) {
                self.index(&stored.identity_id, key);
            }
        }
        self.create_new(COMPLETE);
    }

    /// Files `key` under its identity, so that revoking an identity's
    /// credentials reads only theirs (used where no file of the credential
    /// is at hand: indexing a directory written before the index).
    pub fn index(&self, identity_id: &str, key: &str) {
        let dir = format!("by-identity/{}", path_safe(identity_id));
        fs::create_dir_all(self.root.join(&dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        self.create_new(&format!("{dir}/{key}"));
    }

    /// Writes a new credential: its file synced under a temporary name,
    /// indexed under its identity as a second name of that same file (a
    /// hard link: no inode of its own to allocate, nor to free when the
    /// entry goes), then renamed into `credentials/`. Indexed first: a
    /// credential is never findable but unrevokable.
    pub fn insert_credential(&self, identity_id: &str, key: &str, bytes: &[u8]) {
        let name = format!("credentials/{key}.json");
        let partial = self.partial(&name, bytes);
        let dir = format!("by-identity/{}", path_safe(identity_id));
        let entry = self.root.join(format!("{dir}/{key}"));
        let linked = match fs::hard_link(&partial, &entry) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // The identity's first credential: its directory first.
                fs::create_dir_all(self.root.join(&dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
                fs::hard_link(&partial, &entry)
            }
            linked => linked,
        };
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => panic!("indexing {name}: {e}"),
        }
        fs::rename(&partial, self.root.join(&name))
            .unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }

    /// Drops `key` from its identity's index (gone already is no harm).
    pub fn unindex(&self, identity_id: &str, key: &str) {
        let entry = format!("by-identity/{}/{key}", path_safe(identity_id));
        match fs::remove_file(self.root.join(&entry)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => panic!("removing {entry}: {e}"),
        }
    }

    /// The keys of the credentials of an identity that may still be live
    /// (entries of dead ones are dropped as revocations come across them).
    pub fn keys_of(&self, identity_id: &str) -> Vec<String> {
        let dir = format!("by-identity/{}", path_safe(identity_id));
        match fs::read_dir(self.root.join(&dir)) {
            Ok(entries) => entries
                .map(|e| {
                    let entry = e.unwrap_or_else(|e| panic!("listing {dir}: {e}"));
                    entry.file_name().to_string_lossy().into_owned()
                })
                .collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("listing {dir}: {e}"),
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        self.root.join(name).exists()
    }

    pub fn read_string(&self, name: &str) -> Option<String> {
        match fs::read_to_string(self.root.join(name)) {
            Ok(text) => Some(text.trim().to_string()),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => panic!("reading {name}: {e}"),
        }
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        let partial = self.partial(name, bytes);
        fs::rename(&partial, self.root.join(name))
            .unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }

    /// Writes `name` only if it does not exist yet: true if this call
    /// created it. The link is the atomic step; the whole file is in place
    /// before anyone can see it.
    fn write_new(&self, name: &str, bytes: &[u8]) -> bool {
        let partial = self.partial(name, bytes);
        let created = match fs::hard_link(&partial, self.root.join(name)) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => panic!("writing {name}: {e}"),
        };
        fs::remove_file(&partial).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        created
    }

    /// `bytes` under a temporary name of this writer's own (concurrent
    /// writers of one file must not share one), synced.
    fn partial(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let partial = self
            .root
            .join(format!("{name}.{}.partial", random_hex::<8>()));
        let mut file =
            fs::File::create_new(&partial).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .unwrap_or_else(|e| panic!("writing {name}: {e}"));
        partial
    }

    /// Creates the empty file `name` if it does not exist: true if this
    /// call created it.
    fn create_new(&self, name: &str) -> bool {
        match fs::File::create_new(self.root.join(name)) {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => panic!("creating {name}: {e}"),
        }
    }

    /// Renames `from` to `to`; false when `from` is gone (another process
    /// renamed it first).
    pub fn rename(&self, from: &str, to: &str) -> bool {
        match fs::rename(self.root.join(from), self.root.join(to)) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => panic!("renaming {from}: {e}"),
        }
    }

    /// The credential stored under `key`, in any state, and which of its
    /// files it was read from.
    pub fn credential(&self, key: &str) -> Option<(StoredCredential, Filed)> {
        [
            ("json", Filed::Live),
            ("used", Filed::Used),
            ("revoked", Filed::Revoked),
        ]
        .into_iter()
        .find_map(|(suffix, filed)| {
            let name = format!("credentials/{key}.{suffix}");
            let text = self.read_string(&name)?;
            let stored = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            Some((stored, filed))
        })
    }

    /// The wrong codes counted against a flow. Each is a file
    /// `attempts/<flow-id>.<n>`, created exclusively in order, so they form
    /// an unbroken run from 1.
    pub fn attempts(&self, flow_id: &str) -> u32 {
        (1..)
            .find(|n| !self.exists(&format!("attempts/{flow_id}.{n}")))
            .map_or(0, |free| free - 1)
    }

    /// Counts one wrong code against a flow, never past `max`: each caller
    /// takes the first free place by exclusive create, so concurrent callers
    /// get distinct counts and no count is lost. Returns the new count, or
    /// none when every place was already taken (nothing was counted).
    pub fn count_failed_attempt(&self, flow_id: &str, max: u32) -> Option<u32> {
        (1..=max).find(|n| self.create_new(&format!("attempts/{flow_id}.{n}")))
    }

    /// Logs one wrong code of an identity at `now`: a file of its own under
    /// `identity-attempts/<identity>/`, named by the time and a random
    /// suffix, so concurrent instances never write the same one.
    pub fn log_identity_failure(&self, identity_id: &str, now: u64) {
        let dir = format!("identity-attempts/{}", path_safe(identity_id));
        fs::create_dir_all(self.root.join(&dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        self.create_new(&format!("{dir}/{now:020}-{}", random_hex::<8>()));
    }

    /// The identity's wrong codes logged after `since`; entries a long
    /// while older ([`FORGET_FAILURES_AFTER`] before `since`) are removed on
    /// the way. Nearer ones stay: a later call may ask from an earlier
    /// `since` (a wider window, another instance's clock), and the WIT
    /// allows counting more, never fewer. Without locks
    /// (wasi:filesystem has none) instances racing on one identity may
    /// each see the count before the others' guesses: the cap is exact for
    /// guesses that arrive one after another.
    pub fn identity_failures_since(&self, identity_id: &str, since: u64) -> u32 {
        let dir = format!("identity-attempts/{}", path_safe(identity_id));
        let Ok(entries) = fs::read_dir(self.root.join(&dir)) else {
            return 0;
        };
        let mut count = 0u32;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let at = name
                .to_string_lossy()
                .split_once('-')
                .and_then(|(at, _)| at.parse::<u64>().ok());
            match at {
                Some(at) if at > since => count = count.saturating_add(1),
                Some(at) if at > since.saturating_sub(FORGET_FAILURES_AFTER) => {}
                _ => {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        count
    }

    /// The directory, parsed again only when `identities.json` changed
    /// (its length or modification time): an operation's several lookups
    /// parse it once, and an instance a runtime keeps for more requests
    /// still sees the file an operator replaced.
    pub fn identities(&self) -> Rc<Vec<Identity>> {
        type Stamp = Option<(u64, std::time::SystemTime)>;
        thread_local! {
            static PARSED: RefCell<Option<(Stamp, Rc<Vec<Identity>>)>> = const { RefCell::new(None) };
        }
        let stamp: Stamp = fs::metadata(self.root.join("identities.json"))
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        PARSED.with_borrow_mut(|parsed| {
            if let Some((seen, identities)) = parsed.as_ref()
                && stamp.is_some()
                && *seen == stamp
            {
                return identities.clone();
            }
            let identities = Rc::new(self.parse_identities());
            *parsed = Some((stamp, identities.clone()));
            identities
        })
    }

    fn parse_identities(&self) -> Vec<Identity> {
        let text = self
            .read_string("identities.json")
            .unwrap_or_else(|| "[]".into());
        let stored: Vec<StoredIdentity> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("identities.json: {e}"));
        stored
            .into_iter()
            .map(|i| Identity {
                id: i.id,
                pk: i.pk,
                email: i.email,
                display_name: i.display_name,
                locale: i.locale,
                active: i.active,
            })
            .collect()
    }

    /// Writes a message to `outbox/` as an RFC 5322 file.
    pub fn queue_mail(&self, message: &Message) {
        let id = random_hex::<16>();
        let to = match &message.to_name {
            Some(name) => format!("\"{}\" <{}>", name.replace('"', ""), message.to),
            None => message.to.clone(),
        };
        let boundary = format!("reclaim-{id}");
        let from = message
            .sender
            .as_deref()
            .unwrap_or("Reclaim <no-reply@localhost>");
        let eml = [
            format!("From: {from}"),
            format!("To: {to}"),
            format!("Subject: {}", message.subject),
            format!("Message-ID: <{id}@localhost>"),
            "MIME-Version: 1.0".into(),
            format!("Content-Type: multipart/alternative; boundary=\"{boundary}\""),
            String::new(),
            format!("--{boundary}"),
            "Content-Type: text/plain; charset=utf-8".into(),
            String::new(),
            message.text_body.clone(),
            format!("--{boundary}"),
            "Content-Type: text/html; charset=utf-8".into(),
            String::new(),
            message.html_body.clone(),
            format!("--{boundary}--"),
            String::new(),
        ]
        .join("\r\n");
        self.write(&format!("outbox/{id}.eml"), eml.as_bytes());
    }
}

/// `id` as one path segment: ids come from the operator's identities, and
/// none may name a path outside its directory.
fn path_safe(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            other => format!("%{other:02x}"),
        })
        .collect()
}

/// `N` random bytes in hex.
fn random_hex<const N: usize>() -> String {
    let mut raw = [0u8; N];
    getrandom::fill(&mut raw).expect("wasi:random");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
