//! The recovery operations, written against [`Capabilities`] so that the
//! same logic runs inside the component and natively.

use minijinja::context;

use crate::bindings::exports::reclaim::recovery::recovery::{
    Mailed, RecoveryCode, RecoveryLink, Redemption,
};
use crate::bindings::reclaim::recovery::{
    mailer::Message,
    settings::Settings,
    storage::{ConsumeOutcome, Credential, CredentialKind, CredentialState},
    types::{ErrorKind, Identity, IdentityRef, RecoveryError},
};
use crate::capabilities::Capabilities;
use crate::durations::{self, parse_lifespan};
use crate::errors::error;
use crate::links;
use crate::mail_rendering::{self, TemplateSet};
use crate::tokens;

type Outcome<T> = Result<T, RecoveryError>;

/// Shortest hashing secret accepted: as long as the HMAC-SHA256 output.
const MIN_SECRET_LEN: usize = 32;
/// Longest address RFC 5321 lets through.
const MAX_EMAIL_LEN: usize = 254;

/// One operation's view of the host and its settings.
pub struct Recovery<'a, C: Capabilities> {
    caps: &'a C,
    settings: Settings,
}

impl<'a, C: Capabilities> Recovery<'a, C> {
    /// Reads and checks the settings once per operation.
    pub fn new(caps: &'a C) -> Outcome<Self> {
        let settings = caps.settings();
        if settings.secrets.is_empty() || settings.secrets.iter().any(|s| s.len() < MIN_SECRET_LEN)
        {
            return Err(error(
                ErrorKind::Misconfigured,
                format!(
                    "at least one hashing secret is required, each of at least {MIN_SECRET_LEN} bytes"
                ),
            ));
        }
        if !links::is_usable_base(&settings.public_url) {
            return Err(error(
                ErrorKind::Misconfigured,
                "the public URL must be an absolute http(s) URL without query or fragment",
            ));
        }
        if settings.max_code_attempts == 0 {
            return Err(error(
                ErrorKind::Misconfigured,
                "max-code-attempts must be at least 1",
            ));
        }
        Ok(Self { caps, settings })
    }

    pub fn create_link(
        &self,
        who: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<String>,
    ) -> Outcome<RecoveryLink> {
        let lifespan = self.lifespan(expires_in)?;
        let identity = self.active_identity(who)?;
        let token = tokens::draw_token(&mut self.random());
        let credential = self.new_credential(
            &identity,
            CredentialKind::Link,
            lifespan,
            return_to,
            |secret, _| tokens::link_key(secret, &token),
        );
        self.store(&identity, &credential, self.settings.revoke_older_links);
        Ok(RecoveryLink {
            link: links::token_link(&self.settings.public_url, &credential.flow_id, &token),
            flow_id: credential.flow_id,
            expires_at: credential.expires_at,
        })
    }

    pub fn create_code(
        &self,
        who: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<String>,
    ) -> Outcome<RecoveryCode> {
        let lifespan = self.lifespan(expires_in)?;
        let identity = self.active_identity(who)?;
        let code = tokens::draw_code(&mut self.random());
        let credential = self.new_credential(
            &identity,
            CredentialKind::Code,
            lifespan,
            return_to,
            |secret, flow_id| tokens::code_key(secret, flow_id, &code),
        );
        self.store(&identity, &credential, self.settings.revoke_older_links);
        Ok(RecoveryCode {
            link: links::flow_link(&self.settings.public_url, &credential.flow_id),
            code,
            flow_id: credential.flow_id,
            expires_at: credential.expires_at,
        })
    }

    pub fn send_recovery_email(
        &self,
        who: &IdentityRef,
        expires_in: Option<&str>,
        template: Option<&str>,
        subject: Option<String>,
    ) -> Outcome<Mailed> {
        let lifespan = self.lifespan(expires_in)?;
        let identity = self.active_identity(who)?;
        let template = template.unwrap_or(mail_rendering::RECOVERY_LINK);
        self.mail_credential(
            &identity,
            CredentialKind::Link,
            lifespan,
            template,
            subject,
            None,
            self.settings.revoke_older_links,
        )
    }

    pub fn send_recovery_code(
        &self,
        who: &IdentityRef,
        expires_in: Option<&str>,
    ) -> Outcome<Mailed> {
        let lifespan = self.lifespan(expires_in)?;
        let identity = self.active_identity(who)?;
        self.mail_credential(
            &identity,
            CredentialKind::Code,
            lifespan,
            mail_rendering::RECOVERY_CODE,
            None,
            None,
            self.settings.revoke_older_links,
        )
    }

    pub fn request_recovery(&self, email: &str, return_to: Option<String>) -> Outcome<()> {
        let email = email.trim();
        if !looks_like_email(email) {
            return Err(error(
                ErrorKind::InvalidArgument,
                "\"email\" must be an email address",
            ));
        }
        let lifespan = self.settings.default_lifespan_ns;
        match self.caps.identity_by_email(email) {
            Some(identity) if identity.active && identity.email.is_some() => {
                // The caller must not learn whether the address is known, so a
                // refused message reads as success too; nothing was stored.
                // Anyone can ask for anyone's address, so a request revokes
                // nothing: the person's own links and those an administrator
                // issued stay valid until one of them is redeemed.
                let _ = self.mail_credential(
                    &identity,
                    CredentialKind::Link,
                    lifespan,
                    mail_rendering::RECOVERY_LINK,
                    None,
                    return_to,
                    false,
                );
            }
            // Disabled accounts get no mail (ory/kratos#3858), and unknown ones
            // only a note when the operator asked for it.
            Some(_) => {}
            None if self.settings.notify_unknown_recipients => {
                let ctx = context! { email => email };
                let mail = self.render(mail_rendering::RECOVERY_UNKNOWN, None, &ctx, None)?;
                let _ = self.caps.queue(&message(
                    email,
                    None,
                    mail,
                    mail_rendering::RECOVERY_UNKNOWN,
                    None,
                ));
            }
            None => {}
        }
        Ok(())
    }

    pub fn check_link(&self, token: &str) -> Outcome<()> {
        if !tokens::is_token_shaped(token) {
            return Err(unknown_credential());
        }
        let keys = self.link_keys(token);
        let now = self.caps.now();
        let status = self
            .caps
            .find(&keys, CredentialKind::Link, now)
            .filter(|status| tokens::matches_any(&status.credential.key, &keys))
            .ok_or_else(unknown_credential)?;
        if status.state != CredentialState::Active {
            return Err(inactive_credential(status.state, "link"));
        }
        // What a redemption would answer for the identity, too.
        self.holder_may_recover(&status.credential)
    }

    pub fn redeem_link(&self, token: &str) -> Outcome<Redemption> {
        if !tokens::is_token_shaped(token) {
            return Err(unknown_credential());
        }
        let keys = self.link_keys(token);
        let now = self.caps.now();
        match self
            .caps
            .consume(&keys, CredentialKind::Link, now, u32::MAX)
        {
            ConsumeOutcome::Consumed(credential) if tokens::matches_any(&credential.key, &keys) => {
                self.finish_redemption(credential, now)
            }
            // A store that returned a record under another key is broken:
            // trapping discards the consumption.
            ConsumeOutcome::Consumed(_) => {
                panic!("storage consumed a credential under a key that was not asked for")
            }
            ConsumeOutcome::Unknown => Err(unknown_credential()),
            ConsumeOutcome::NotActive(state) => Err(inactive_credential(state, "link")),
        }
    }

    pub fn redeem_code(&self, flow_id: &str, code: &str) -> Outcome<Redemption> {
        if !tokens::is_uuid(flow_id) {
            return Err(error(ErrorKind::InvalidArgument, "\"flow\" must be a UUID"));
        }
        if !tokens::is_code_shaped(code) {
            return Err(error(
                ErrorKind::InvalidArgument,
                format!("\"code\" must be {} digits", tokens::CODE_DIGITS),
            ));
        }
        let now = self.caps.now();
        let max = self.settings.max_code_attempts;
        let status = self
            .caps
            .code_for_flow(flow_id, now)
            .ok_or_else(unknown_credential)?;
        if status.failed_attempts >= max {
            return Err(too_many_attempts());
        }
        if status.state != CredentialState::Active {
            return Err(inactive_credential(status.state, "code"));
        }
        let keys: Vec<String> = self
            .settings
            .secrets
            .iter()
            .map(|s| tokens::code_key(s, flow_id, code))
            .collect();
        if !tokens::matches_any(&status.credential.key, &keys) {
            let failed = self.caps.record_failed_attempt(flow_id, max, now);
            if failed >= max {
                return Err(too_many_attempts());
            }
            let left = max - failed;
            return Err(error(
                ErrorKind::CodeIncorrect,
                format!(
                    "The recovery code is invalid or has already been used. {left} attempt{} left.",
                    if left == 1 { "" } else { "s" }
                ),
            ));
        }
        match self
            .caps
            .consume(&[status.credential.key], CredentialKind::Code, now, max)
        {
            ConsumeOutcome::Consumed(credential) => self.finish_redemption(credential, now),
            ConsumeOutcome::Unknown => Err(unknown_credential()),
            // Another caller's wrong codes ran the flow out meanwhile.
            ConsumeOutcome::NotActive(CredentialState::Revoked) => Err(too_many_attempts()),
            ConsumeOutcome::NotActive(state) => Err(inactive_credential(state, "code")),
        }
    }

    pub fn revoke(&self, who: &IdentityRef) -> Outcome<u32> {
        let identity = self.identity(who)?;
        Ok(self
            .caps
            .revoke_identity(&identity.id, None, self.caps.now()))
    }

    pub fn notify_password_changed(&self, who: &IdentityRef) -> Outcome<()> {
        let identity = self.identity(who)?;
        let email = mail_address(&identity)?;
        let ctx = context! { name => identity.display_name, email => email };
        let mail = self.render(
            mail_rendering::PASSWORD_CHANGED,
            identity.locale.as_deref(),
            &ctx,
            None,
        )?;
        self.caps
            .queue(&message(
                email,
                identity.display_name.as_deref(),
                mail,
                mail_rendering::PASSWORD_CHANGED,
                None,
            ))
            .map_err(mail_rejected)
    }

    /// Renders and queues the mail first: only once the mailer took it are
    /// older credentials revoked (when `replaces_older`) and the new one
    /// stored, so a refused message leaves nothing behind.
    #[allow(clippy::too_many_arguments)]
    fn mail_credential(
        &self,
        identity: &Identity,
        kind: CredentialKind,
        lifespan: u64,
        template: &str,
        subject: Option<String>,
        return_to: Option<String>,
        replaces_older: bool,
    ) -> Outcome<Mailed> {
        let email = mail_address(identity)?;
        let (secret, link, credential) = match kind {
            CredentialKind::Link => {
                let token = tokens::draw_token(&mut self.random());
                let credential =
                    self.new_credential(identity, kind, lifespan, return_to, |key, _| {
                        tokens::link_key(key, &token)
                    });
                let link =
                    links::token_link(&self.settings.public_url, &credential.flow_id, &token);
                (None, link, credential)
            }
            CredentialKind::Code => {
                let code = tokens::draw_code(&mut self.random());
                let credential =
                    self.new_credential(identity, kind, lifespan, return_to, |key, flow_id| {
                        tokens::code_key(key, flow_id, &code)
                    });
                let link = links::flow_link(&self.settings.public_url, &credential.flow_id);
                (Some(code), link, credential)
            }
        };
        let locale = identity.locale.as_deref();
        let ctx = context! {
            name => identity.display_name,
            email => email,
            link => link,
            code => secret,
            expires_in => durations::human(lifespan, locale.unwrap_or_default()),
            expires_in_minutes => lifespan.div_ceil(60_000_000_000),
        };
        let mail = self.render(template, locale, &ctx, subject)?;
        self.caps
            .queue(&message(
                email,
                identity.display_name.as_deref(),
                mail,
                template,
                Some(&credential.flow_id),
            ))
            .map_err(mail_rejected)?;
        self.store(identity, &credential, replaces_older);
        Ok(Mailed {
            flow_id: credential.flow_id,
            expires_at: credential.expires_at,
        })
    }

    fn finish_redemption(&self, credential: Credential, now: u64) -> Outcome<Redemption> {
        // Whoever holds one credential of an identity now holds the account:
        // every other way in dies with this one.
        self.caps
            .revoke_identity(&credential.identity_id, None, now);
        self.holder_may_recover(&credential)?;
        Ok(Redemption {
            identity_id: credential.identity_id,
            flow_id: credential.flow_id,
            return_to: credential.return_to,
        })
    }

    /// Whether the identity a credential recovers still exists and is
    /// active.
    fn holder_may_recover(&self, credential: &Credential) -> Outcome<()> {
        match self
            .caps
            .identity(&IdentityRef::Id(credential.identity_id.clone()))
        {
            Some(identity) if identity.active => Ok(()),
            Some(_) => Err(inactive_identity()),
            None => Err(error(
                ErrorKind::IdentityNotFound,
                "The identity of this credential no longer exists.",
            )),
        }
    }

    /// A link token's key under every secret, newest first.
    fn link_keys(&self, token: &str) -> Vec<String> {
        self.settings
            .secrets
            .iter()
            .map(|s| tokens::link_key(s, token))
            .collect()
    }

    fn lifespan(&self, expires_in: Option<&str>) -> Outcome<u64> {
        match expires_in {
            None => Ok(self.settings.default_lifespan_ns),
            Some(text) => parse_lifespan(text, self.settings.max_lifespan_ns)
                .map_err(|e| error(ErrorKind::InvalidArgument, e.message(text))),
        }
    }

    fn identity(&self, who: &IdentityRef) -> Outcome<Identity> {
        if let IdentityRef::Id(id) = who
            && !tokens::is_uuid(id)
        {
            return Err(error(
                ErrorKind::InvalidArgument,
                "\"identity_id\" must be a UUID",
            ));
        }
        self.caps.identity(who).ok_or_else(|| {
            let shown = match who {
                IdentityRef::Id(id) => id.clone(),
                IdentityRef::Pk(pk) => pk.to_string(),
            };
            error(
                ErrorKind::IdentityNotFound,
                format!("Unable to locate the identity {shown}."),
            )
        })
    }

    fn active_identity(&self, who: &IdentityRef) -> Outcome<Identity> {
        let identity = self.identity(who)?;
        if identity.active {
            Ok(identity)
        } else {
            Err(inactive_identity())
        }
    }

    fn new_credential(
        &self,
        identity: &Identity,
        kind: CredentialKind,
        lifespan: u64,
        return_to: Option<String>,
        key: impl FnOnce(&[u8], &str) -> String,
    ) -> Credential {
        let flow_id = tokens::draw_flow_id(&mut self.random());
        let now = self.caps.now();
        Credential {
            key: key(&self.settings.secrets[0], &flow_id),
            kind,
            identity_id: identity.id.clone(),
            flow_id,
            issued_at: now,
            expires_at: now.saturating_add(lifespan),
            return_to,
        }
    }

    /// Stores a new credential, after revoking the identity's older ones when
    /// it replaces them.
    fn store(&self, identity: &Identity, credential: &Credential, replaces_older: bool) {
        if replaces_older {
            self.caps
                .revoke_identity(&identity.id, None, credential.issued_at);
        }
        self.caps.insert(credential);
    }

    /// Renders template set `name` for `locale`: the host's override, else
    /// the built-in one; `subject` replaces the set's subject template.
    fn render(
        &self,
        name: &str,
        locale: Option<&str>,
        ctx: &minijinja::Value,
        subject: Option<String>,
    ) -> Outcome<mail_rendering::Rendered> {
        let candidates = mail_rendering::locale_candidates(locale);
        let set = candidates
            .iter()
            .find_map(|l| self.caps.mail_template(name, l))
            .map(|t| TemplateSet {
                subject: t.subject,
                text_body: t.text_body,
                html_body: t.html_body,
            })
            .or_else(|| mail_rendering::builtin(name, &candidates))
            .ok_or_else(|| {
                error(
                    ErrorKind::TemplateInvalid,
                    format!("no mail template is named {name:?}"),
                )
            })?;
        let set = TemplateSet {
            subject: subject.unwrap_or(set.subject),
            ..set
        };
        mail_rendering::render(&set, ctx).map_err(|e| error(ErrorKind::TemplateInvalid, e))
    }

    fn random(&self) -> impl FnMut(&mut [u8]) + '_ {
        |buf| self.caps.fill_random(buf)
    }
}

fn message(
    to: &str,
    to_name: Option<&str>,
    mail: mail_rendering::Rendered,
    template: &str,
    flow_id: Option<&str>,
) -> Message {
    Message {
        to: to.to_string(),
        to_name: to_name.map(str::to_string),
        subject: mail.subject,
        text_body: mail.text_body,
        html_body: mail.html_body,
        template: template.to_string(),
        flow_id: flow_id.map(str::to_string),
    }
}

fn mail_address(identity: &Identity) -> Outcome<&str> {
    identity
        .email
        .as_deref()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            error(
                ErrorKind::IdentityWithoutEmail,
                "User does not have an email address set.",
            )
        })
}

/// A cheap shape check: one `@` with text on both sides, no spaces or control
/// characters. Deliverability is the mailer's to judge.
fn looks_like_email(email: &str) -> bool {
    let mut parts = email.splitn(2, '@');
    let (local, domain) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn unknown_credential() -> RecoveryError {
    error(
        ErrorKind::CredentialUnknown,
        "The recovery token is invalid or has already been used. Please request a new one.",
    )
}

fn too_many_attempts() -> RecoveryError {
    error(
        ErrorKind::TooManyAttempts,
        "The request was submitted too often. Please request another code.",
    )
}

fn inactive_identity() -> RecoveryError {
    error(ErrorKind::IdentityInactive, "This account was disabled.")
}

fn mail_rejected(reason: String) -> RecoveryError {
    error(
        ErrorKind::MailRejected,
        format!("The recovery email could not be queued: {reason}"),
    )
}

fn inactive_credential(state: CredentialState, what: &str) -> RecoveryError {
    match state {
        CredentialState::Used => error(
            ErrorKind::CredentialUsed,
            format!("This recovery {what} was already used. Please request a new one."),
        ),
        CredentialState::Expired => error(
            ErrorKind::CredentialExpired,
            format!("This recovery {what} has expired. Please request a new one."),
        ),
        CredentialState::Revoked => error(
            ErrorKind::CredentialRevoked,
            format!(
                "This recovery {what} is no longer valid because a newer one was issued or access was revoked. Please request a new one."
            ),
        ),
        CredentialState::Active => unknown_credential(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shape_check_refuses_obvious_non_addresses() {
        assert!(looks_like_email("a@b"));
        for bad in ["", "a", "@b", "a@", "a@b@c", "a b@c", "a@b\r\nBcc: x@y"] {
            assert!(!looks_like_email(bad), "{bad:?}");
        }
    }
}
