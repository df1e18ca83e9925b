//! Mail: recovery links and codes sent to the identity, self-service
//! requests by address, and the notices (password changed, account
//! recovered, address changed).

use minijinja::context;

use super::{Outcome, Recovery};
use crate::bindings::exports::reclaim::recovery::recovery::Mailed;
use crate::bindings::reclaim::recovery::{
    mailer::Message,
    storage::CredentialKind,
    types::{ErrorKind, Identity, IdentityRef},
};
use crate::capabilities::Capabilities;
use crate::durations;
use crate::errors::{error, mail_rejected};
use crate::links;
use crate::mail_rendering::{self, TemplateSet};
use crate::tokens;

/// Longest address RFC 5321 lets through.
const MAX_EMAIL_LEN: usize = 254;

impl<C: Capabilities> Recovery<'_, C> {
    pub fn send_recovery_email(
        &self,
        who: &IdentityRef,
        expires_in: Option<&str>,
        template: Option<&str>,
        subject: Option<String>,
        sender: Option<String>,
    ) -> Outcome<Mailed> {
        let lifespan = self.lifespan(expires_in)?;
        let identity = self.active_identity(who)?;
        let letter = Letter {
            template: template.unwrap_or(mail_rendering::RECOVERY_LINK),
            subject,
            sender,
        };
        self.mail_credential(
            &identity,
            CredentialKind::Link,
            lifespan,
            letter,
            None,
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
            Letter::of(mail_rendering::RECOVERY_CODE),
            None,
            None,
            self.settings.revoke_older_links,
        )
    }

    pub fn request_recovery(&self, email: &str, return_to: Option<String>) -> Outcome<()> {
        self.request(email, return_to, None)
    }

    pub fn request_recovery_code(
        &self,
        email: &str,
        flow_id: &str,
        return_to: Option<String>,
    ) -> Outcome<()> {
        let Ok(flow) = uuid::Uuid::try_parse(flow_id) else {
            return Err(error(
                ErrorKind::InvalidArgument,
                "\"flow-id\" must be a UUID",
            ));
        };
        self.request(email, return_to, Some(flow.hyphenated().to_string()))
    }

    /// A self-service request: a link, or a code bound to `code_flow`.
    fn request(
        &self,
        email: &str,
        return_to: Option<String>,
        code_flow: Option<String>,
    ) -> Outcome<()> {
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
                let (kind, template) = match code_flow {
                    Some(_) => (CredentialKind::Code, mail_rendering::RECOVERY_CODE),
                    None => (CredentialKind::Link, mail_rendering::RECOVERY_LINK),
                };
                // The caller must not learn whether the address is known, so a
                // refused message reads as success too; nothing was stored.
                // Anyone can ask for anyone's address, so a request revokes
                // nothing: the person's own links and those an administrator
                // issued stay valid until one of them is redeemed.
                let _ = self.mail_credential(
                    &identity,
                    kind,
                    lifespan,
                    Letter::of(template),
                    return_to,
                    code_flow,
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

    pub fn notify_password_changed(&self, who: &IdentityRef) -> Outcome<()> {
        let identity = self.identity(who)?;
        let email = mail_address(&identity)?;
        let ctx = context! { name => identity.display_name, email => email };
        self.notice(&identity, email, mail_rendering::PASSWORD_CHANGED, &ctx)
    }

    pub fn notify_account_recovered(&self, who: &IdentityRef) -> Outcome<()> {
        let identity = self.identity(who)?;
        let email = mail_address(&identity)?;
        let ctx = context! { name => identity.display_name, email => email };
        self.notice(&identity, email, mail_rendering::ACCOUNT_RECOVERED, &ctx)
    }

    pub fn notify_address_changed(&self, who: &IdentityRef, old_address: &str) -> Outcome<()> {
        let identity = self.identity(who)?;
        let old_address = old_address.trim();
        if !looks_like_email(old_address) {
            return Err(error(
                ErrorKind::InvalidArgument,
                "\"old-address\" must be an email address",
            ));
        }
        let ctx = context! {
            name => identity.display_name,
            email => old_address,
            new_email => identity.email,
        };
        self.notice(
            &identity,
            old_address,
            mail_rendering::ADDRESS_CHANGED,
            &ctx,
        )
    }

    /// Renders the notice `template` in the identity's language and queues
    /// it to `to`: a notice carries no link or code, so no flow.
    fn notice(
        &self,
        identity: &Identity,
        to: &str,
        template: &str,
        ctx: &minijinja::Value,
    ) -> Outcome<()> {
        let mail = self.render(template, identity.locale.as_deref(), ctx, None)?;
        self.caps
            .queue(&message(
                to,
                identity.display_name.as_deref(),
                mail,
                template,
                None,
            ))
            .map_err(mail_rejected)
    }

    /// Renders and queues the mail first: only once the mailer took it are
    /// older credentials revoked (when `replaces_older`) and the new one
    /// stored, so a refused message leaves nothing behind.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mail_credential(
        &self,
        identity: &Identity,
        kind: CredentialKind,
        lifespan: u64,
        letter: Letter<'_>,
        return_to: Option<String>,
        flow_id: Option<String>,
        replaces_older: bool,
    ) -> Outcome<Mailed> {
        let email = mail_address(identity)?;
        let (secret, link, credential) = match kind {
            CredentialKind::Link => {
                let token = tokens::draw_token(&mut self.random());
                let credential =
                    self.new_credential(identity, kind, lifespan, return_to, flow_id, |key, _| {
                        tokens::link_key(key, &token)
                    });
                let link =
                    links::token_link(&self.settings.public_url, &credential.flow_id, &token);
                (None, link, credential)
            }
            CredentialKind::Code => {
                let code = tokens::draw_code(&mut self.random());
                let credential = self.new_credential(
                    identity,
                    kind,
                    lifespan,
                    return_to,
                    flow_id,
                    |key, flow_id| tokens::code_key(key, flow_id, &code),
                );
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
        let mail = self.render(letter.template, locale, &ctx, letter.subject)?;
        self.caps
            .queue(&Message {
                sender: letter.sender,
                ..message(
                    email,
                    identity.display_name.as_deref(),
                    mail,
                    letter.template,
                    Some(&credential.flow_id),
                )
            })
            .map_err(mail_rejected)?;
        self.store(identity, &credential, replaces_older);
        Ok(Mailed {
            flow_id: credential.flow_id,
            expires_at: credential.expires_at,
        })
    }

    /// Renders template set `name` for `locale`: the host's override, else
    /// the built-in one; `subject` replaces the set's subject template.
    pub(super) fn render(
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
        sender: None,
    }
}

/// Which mail a credential goes out in: the template set, a subject
/// template replacing the set's, and a sender replacing the host's.
pub(super) struct Letter<'a> {
    pub template: &'a str,
    pub subject: Option<String>,
    pub sender: Option<String>,
}

impl<'a> Letter<'a> {
    pub fn of(template: &'a str) -> Self {
        Self {
            template,
            subject: None,
            sender: None,
        }
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
