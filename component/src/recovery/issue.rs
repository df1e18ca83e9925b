//! Issuing links and codes to hand over (Kratos' admin API).

use super::{Outcome, Recovery};
use crate::bindings::exports::reclaim::recovery::recovery::{RecoveryCode, RecoveryLink};
use crate::bindings::reclaim::recovery::{storage::CredentialKind, types::IdentityRef};
use crate::capabilities::Capabilities;
use crate::links;
use crate::tokens;

impl<C: Capabilities> Recovery<'_, C> {
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
            None,
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
            None,
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
}
