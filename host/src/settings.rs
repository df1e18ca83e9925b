//! The recovery settings: what the component reads through its `settings`
//! import, and the hashing secrets kept in the data directory.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::clock::duration_nanos;
use crate::wit::{MailTemplate, WitSettings};

/// Shortest hashing secret accepted (the component refuses shorter ones too).
pub const MIN_SECRET_BYTES: usize = 32;
const SECRETS_FILE: &str = "secrets";

/// A hashing secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from configuration; refuses one shorter than 32 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_BYTES {
            bail!("a hashing secret must be at least {MIN_SECRET_BYTES} bytes long");
        }
        Ok(Self(bytes))
    }

    /// The secret's bytes, for deriving keys of other purposes from it.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// 256 fresh random bits, hex-encoded so the secrets file stays text.
    pub fn generate() -> Result<Self> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).context("drawing a secret")?;
        Self::new(hex::encode(raw))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Host-supplied mail templates that replace the component's built-in ones,
/// keyed by template name and locale (`""` for the default language).
#[derive(Clone, Debug, Default)]
pub struct Templates(HashMap<(String, String), MailTemplate>);

impl Templates {
    /// Reads overrides from `dir`: `<dir>/<name>.{subject,txt,html}` for the
    /// default language and `<dir>/<locale>/<name>.{subject,txt,html}` for
    /// others. A set must have all three files.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut found = HashMap::new();
        let mut scan = |locale: &str, folder: &Path| -> Result<()> {
            for entry in
                fs::read_dir(folder).with_context(|| format!("reading {}", folder.display()))?
            {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "subject") {
                    let name = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .context("template names must be UTF-8")?;
                    let read = |ext: &str| {
                        let file = folder.join(format!("{name}.{ext}"));
                        fs::read_to_string(&file)
                            .with_context(|| format!("reading {}", file.display()))
                    };
                    let template = MailTemplate {
                        subject: read("subject")?,
                        text_body: read("txt")?,
                        html_body: read("html")?,
                    };
                    // A broken template is reported now, not when the first
                    // person needs the mail (the component renders with the
                    // same minijinja syntax).
                    for (part, source) in [
                        ("subject", &template.subject),
                        ("txt", &template.text_body),
                        ("html", &template.html_body),
                    ] {
                        minijinja::Environment::new()
                            .template_from_str(source)
                            .with_context(|| {
                                format!(
                                    "{} does not parse",
                                    folder.join(format!("{name}.{part}")).display()
                                )
                            })?;
                    }
                    found.insert((name.to_string(), locale.to_string()), template);
                }
            }
            Ok(())
        };
        scan("", dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                let locale = path
                    .file_name()
                    .and_then(|s| s.to_str())
                    .context("locale folders must be UTF-8")?;
                scan(locale, &path)?;
            }
        }
        Ok(Self(found))
    }

    /// The override of `name` in exactly `locale`, if any.
    pub fn get(&self, name: &str, locale: &str) -> Option<&MailTemplate> {
        self.0.get(&(name.to_string(), locale.to_string()))
    }
}

/// What the recovery component is told about its deployment: the URL and
/// secrets, and the tunables the operator set. A tunable left `None` takes
/// the component's default (`wit/recovery.wit`, `settings`), the one copy.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Public base URL of the self-service pages (links point here).
    pub public_url: String,
    /// Hashing secrets, newest first.
    pub secrets: Vec<Secret>,
    /// Lifespan of a credential when the caller names none.
    pub default_lifespan: Option<Duration>,
    /// Longest lifespan a caller may ask for.
    pub max_lifespan: Option<Duration>,
    /// Whether a link or code an administrator issues revokes the identity's
    /// older ones (a self-service request never does).
    pub revoke_older_links: Option<bool>,
    /// Wrong codes a code flow survives.
    pub max_code_attempts: Option<u32>,
    /// Wrong codes an identity survives across its flows within
    /// `code_attempt_window`.
    pub max_code_attempts_per_identity: Option<u32>,
    /// The window of `max_code_attempts_per_identity`.
    pub code_attempt_window: Option<Duration>,
    /// Whether unknown addresses get an "account access attempted" note.
    pub notify_unknown_recipients: Option<bool>,
    /// Mail template overrides.
    pub templates: Templates,
}

impl Settings {
    /// The given URL and secrets, every tunable at the component's default.
    pub fn new(public_url: impl Into<String>, secrets: Vec<Secret>) -> Self {
        Self {
            public_url: public_url.into(),
            secrets,
            default_lifespan: None,
            max_lifespan: None,
            revoke_older_links: None,
            max_code_attempts: None,
            max_code_attempts_per_identity: None,
            code_attempt_window: None,
            notify_unknown_recipients: None,
            templates: Templates::default(),
        }
    }

    pub(crate) fn to_wit(&self) -> WitSettings {
        WitSettings {
            public_url: self.public_url.clone(),
            default_lifespan_ns: self.default_lifespan.map(duration_nanos),
            max_lifespan_ns: self.max_lifespan.map(duration_nanos),
            secrets: self.secrets.iter().map(|s| s.0.clone()).collect(),
            revoke_older_links: self.revoke_older_links,
            max_code_attempts: self.max_code_attempts,
            max_code_attempts_per_identity: self.max_code_attempts_per_identity,
            code_attempt_window_ns: self.code_attempt_window.map(duration_nanos),
            notify_unknown_recipients: self.notify_unknown_recipients,
        }
    }
}

/// The data directory's secrets file: one secret per line, newest first.
/// Created with one fresh secret (readable by the owner alone) on first use.
pub fn load_or_create_secrets(data_dir: &Path) -> Result<Vec<Secret>> {
    let path = data_dir.join(SECRETS_FILE);
    if !path.exists() {
        let secret = Secret::generate()?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(&secret.0)?;
                file.write_all(b"\n")?;
                file.sync_all()?;
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    parse_secrets(
        &fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("in {}", path.display()))
}

/// Secrets from text: one per line or comma-separated, newest first.
pub fn parse_secrets(text: &str) -> Result<Vec<Secret>> {
    let secrets = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Secret::new(s.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    if secrets.is_empty() {
        bail!("no hashing secret given");
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secrets(dir.path()).unwrap();
        let again = load_or_create_secrets(dir.path()).unwrap();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(SECRETS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert!(parse_secrets("short").is_err());
        assert!(parse_secrets(" , ").is_err());
        let secret = Secret::new("x".repeat(32)).unwrap();
        assert!(!format!("{secret:?}").contains("xxx"));
    }

    #[test]
    fn template_overrides_are_read_per_locale() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("de")).unwrap();
        for (folder, subject) in [
            (dir.path().to_path_buf(), "Hi"),
            (dir.path().join("de"), "Hallo"),
        ] {
            fs::write(folder.join("recovery-link.subject"), subject).unwrap();
            fs::write(folder.join("recovery-link.txt"), "t").unwrap();
            fs::write(folder.join("recovery-link.html"), "h").unwrap();
        }
        let templates = Templates::load(dir.path()).unwrap();
        assert_eq!(templates.get("recovery-link", "").unwrap().subject, "Hi");
        assert_eq!(
            templates.get("recovery-link", "de").unwrap().subject,
            "Hallo"
        );
        assert!(templates.get("recovery-link", "fr").is_none());
    }

    #[test]
    fn a_template_that_does_not_parse_is_reported_at_load() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("recovery-link.subject"), "Hi").unwrap();
        fs::write(
            dir.path().join("recovery-link.txt"),
            "{% if link %}unclosed",
        )
        .unwrap();
        fs::write(dir.path().join("recovery-link.html"), "h").unwrap();
        let err = Templates::load(dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("recovery-link.txt does not parse"),
            "{err:#}"
        );
    }

    #[test]
    fn a_template_set_missing_a_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("recovery-link.subject"), "Hi").unwrap();
        assert!(Templates::load(dir.path()).is_err());
    }
}
