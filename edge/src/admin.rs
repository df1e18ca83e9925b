//! Kratos' admin recovery routes and authentik's user recovery routes,
//! behind the admin token: adapters of the wire crate's `admit` and
//! `answer` for each route (`reclaim_wire::kratos`, `reclaim_wire::authentik`),
//! which `reclaim serve` adapts too.

use reclaim_wire::answer::Answer;
use reclaim_wire::authentik::{self, AuthentikError};
use reclaim_wire::checks::admin_authorized;
use reclaim_wire::kratos::{self, ErrorGeneric};
use reclaim_wire::routes::Route;

use crate::bindings::reclaim::recovery::directory;
use crate::engine::{self, IdentityRef, wired};
use crate::reply::Reply;
use crate::request::Request;
use crate::settings::{self, Settings};

/// This area's answer to `route`, if it is one of its routes; `id` is the
/// path's `{id}`.
pub fn answer(route: Route, id: &str, request: &Request) -> Option<Reply> {
    Some(match route {
        Route::RecoveryLink => create_recovery_link(request),
        Route::RecoveryCode => create_recovery_code(request),
        Route::AuthentikRecovery => authentik_recovery(request, id),
        Route::AuthentikRecoveryEmail => authentik_recovery_email(request, id),
        _ => return None,
    })
}

fn authorized(request: &Request) -> bool {
    admin_authorized(request.header("authorization"), &settings::admin_token())
}

/// A Kratos route: the token, then `work`, its every error `errorGeneric`.
fn kratos_route(
    request: &Request,
    work: impl FnOnce(&str) -> Result<Answer, ErrorGeneric>,
) -> Reply {
    if !authorized(request) {
        return Reply::kratos(&ErrorGeneric::unauthorized(&request.id));
    }
    work(&request.id).map_or_else(|e| Reply::kratos(&e), Reply::from)
}

fn create_recovery_link(request: &Request) -> Reply {
    kratos_route(request, |id| {
        let allowed = settings::allowed_return_urls();
        let asked = kratos::admit_issue(&request.query, &request.body, &allowed, id)?;
        let link = wired(engine::create_link(
            &IdentityRef::Id(asked.identity_id),
            asked.expires_in.as_deref(),
            asked.return_to.as_deref(),
        ))
        .map_err(|o| ErrorGeneric::from_outcome(&o, id))?;
        Ok(kratos::answer_link(link.link, link.expires_at))
    })
}

fn create_recovery_code(request: &Request) -> Reply {
    kratos_route(request, |id| {
        let allowed = settings::allowed_return_urls();
        let asked = kratos::admit_issue(&request.query, &request.body, &allowed, id)?;
        let code = wired(engine::create_code(
            &IdentityRef::Id(asked.identity_id),
            asked.expires_in.as_deref(),
            asked.return_to.as_deref(),
        ))
        .map_err(|o| ErrorGeneric::from_outcome(&o, id))?;
        Ok(kratos::answer_code(code.link, code.code, code.expires_at))
    })
}

/// An authentik route: the token, then `work`, its every error in
/// authentik's shapes.
fn authentik_route(
    request: &Request,
    work: impl FnOnce() -> Result<Answer, AuthentikError>,
) -> Reply {
    if !authorized(request) {
        return Reply::authentik(&AuthentikError::Forbidden);
    }
    work().map_or_else(|e| Reply::authentik(&e), Reply::from)
}

fn authentik_recovery(request: &Request, pk: &str) -> Reply {
    authentik_route(request, || {
        let asked = authentik::admit_recovery(pk, &request.body)?;
        let link = wired(engine::create_link(
            &IdentityRef::Pk(asked.pk),
            asked.expires_in.as_deref(),
            None,
        ))
        .map_err(|o| AuthentikError::from_outcome(&o, &request.id))?;
        Ok(authentik::answer_recovery(link.link))
    })
}

fn authentik_recovery_email(request: &Request, pk: &str) -> Reply {
    authentik_route(request, || {
        let asked = authentik::admit_recovery_email(pk, &request.query, &request.body)?;
        let user = directory::get_by_pk(asked.pk);
        let stages = Settings::load().email_stages;
        let call = authentik::plan_recovery_email(
            asked,
            user.as_ref().map(|u| u.email.as_deref()),
            &stages,
        )?;
        wired(engine::send_recovery_email(
            &IdentityRef::Pk(call.pk),
            Some(&call.expires_in),
            Some(&call.template),
            call.subject.as_deref(),
            call.from.as_deref(),
        ))
        .map_err(|o| AuthentikError::from_outcome(&o, &request.id))?;
        Ok(authentik::answer_recovery_email())
    })
}
