//! Kratos' admin recovery routes and authentik's user recovery routes,
//! behind the admin token: the same checks, in the same order, as
//! `reclaim serve`'s `http::kratos` and `http::authentik`.

use http::StatusCode;
use reclaim_wire::authentik::{self, AuthentikError, EmailStageQuery, Link, NO_EMAIL, NO_STAGE};
use reclaim_wire::checks::admin_authorized;
use reclaim_wire::kratos::{
    self, CreateRecoveryCodeForIdentityBody, CreateRecoveryLinkForIdentityBody, ErrorGeneric,
    RecoveryCodeForIdentity, RecoveryLinkForIdentity, ReturnTo,
};
use reclaim_wire::rfc3339;

use crate::bindings::reclaim::recovery::directory;
use crate::engine::{self, IdentityRef, wired};
use crate::reply::Reply;
use crate::request::Request;
use crate::settings::{self, Settings};

fn authorized(request: &Request) -> bool {
    admin_authorized(request.header("authorization"), &settings::admin_token())
}

/// A Kratos route's work, its every error answered as `errorGeneric`.
fn kratos_route(
    request: &Request,
    work: impl FnOnce(&str) -> Result<Reply, ErrorGeneric>,
) -> Reply {
    if !authorized(request) {
        return Reply::kratos(&ErrorGeneric::unauthorized(&request.id));
    }
    work(&request.id).unwrap_or_else(|e| Reply::kratos(&e))
}

fn return_to(request: &Request, id: &str) -> Result<Option<String>, ErrorGeneric> {
    let query: ReturnTo = serde_urlencoded::from_str(&request.query)
        .map_err(|e| ErrorGeneric::bad_request(format!("The query could not be read: {e}"), id))?;
    kratos::return_to(&settings::allowed_return_urls(), query.return_to, id)
}

pub fn create_recovery_link(request: &Request) -> Reply {
    kratos_route(request, |id| {
        let body: CreateRecoveryLinkForIdentityBody = kratos::json_body(&request.body, id)?;
        let who = IdentityRef::Id(kratos::identity_id(&body.identity_id, id)?);
        let return_to = return_to(request, id)?;
        let link = wired(engine::create_link(
            &who,
            body.expires_in.as_deref(),
            return_to.as_deref(),
        ))
        .map_err(|o| ErrorGeneric::from_outcome(&o, id))?;
        Ok(Reply::json(
            StatusCode::OK,
            &RecoveryLinkForIdentity {
                recovery_link: link.link,
                expires_at: rfc3339(link.expires_at),
            },
        ))
    })
}

pub fn create_recovery_code(request: &Request) -> Reply {
    kratos_route(request, |id| {
        let body: CreateRecoveryCodeForIdentityBody = kratos::json_body(&request.body, id)?;
        let who = IdentityRef::Id(kratos::identity_id(&body.identity_id, id)?);
        let return_to = return_to(request, id)?;
        let code = wired(engine::create_code(
            &who,
            body.expires_in.as_deref(),
            return_to.as_deref(),
        ))
        .map_err(|o| ErrorGeneric::from_outcome(&o, id))?;
        Ok(Reply::json(
            StatusCode::CREATED,
            &RecoveryCodeForIdentity {
                recovery_link: code.link,
                recovery_code: code.code,
                expires_at: rfc3339(code.expires_at),
            },
        ))
    })
}

/// An authentik route's work, its every error in authentik's shapes.
fn authentik_route(
    request: &Request,
    work: impl FnOnce() -> Result<Reply, AuthentikError>,
) -> Reply {
    if !authorized(request) {
        return Reply::authentik(&AuthentikError::Forbidden);
    }
    work().unwrap_or_else(|e| Reply::authentik(&e))
}

pub fn authentik_recovery(request: &Request, pk: &str) -> Reply {
    authentik_route(request, || {
        let who = IdentityRef::Pk(authentik::user_pk(pk)?);
        let options = authentik::options(&request.body)?;
        let expires_in = options
            .token_duration
            .as_deref()
            .map(authentik::token_duration)
            .transpose()?;
        let link = wired(engine::create_link(&who, expires_in.as_deref(), None))
            .map_err(|o| AuthentikError::from_outcome(&o, &request.id))?;
        Ok(Reply::json(StatusCode::OK, &Link { link: link.link }))
    })
}

pub fn authentik_recovery_email(request: &Request, pk: &str) -> Reply {
    authentik_route(request, || {
        let pk = authentik::user_pk(pk)?;
        let options = authentik::options(&request.body)?;
        let query: EmailStageQuery = serde_urlencoded::from_str(&request.query).unwrap_or_default();
        // authentik's order: the user, their address, then the stage.
        let identity = directory::get_by_pk(pk).ok_or(AuthentikError::NotFound)?;
        if identity.email.as_deref().is_none_or(str::is_empty) {
            return Err(AuthentikError::Invalid(NO_EMAIL.into()));
        }
        let settings = Settings::load();
        let stage = query
            .email_stage
            .or(options.email_stage)
            .and_then(|key| settings.email_stage(&key))
            .ok_or_else(|| AuthentikError::Invalid(NO_STAGE.into()))?;
        let expires_in = match options.token_duration.as_deref() {
            Some(text) => authentik::token_duration(text)?,
            None => stage.token_expiry.clone(),
        };
        wired(engine::send_recovery_email(
            &IdentityRef::Pk(pk),
            Some(&expires_in),
            Some(&stage.template),
            stage.subject.as_deref(),
        ))
        .map_err(|o| AuthentikError::from_outcome(&o, &request.id))?;
        Ok(Reply::new(StatusCode::NO_CONTENT))
    })
}
