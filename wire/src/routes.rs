//! The route table: every path either server answers, its methods, who may
//! call it and whether the edge serves it. `reclaim serve` builds its router
//! from it, the edge dispatches through [`find`], and the HTTP fuzz target
//! draws its paths from it: a route added here is a route of both servers.

/// A method of a route; `GET` answers `HEAD` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// The verb a request's method asks for (`HEAD` is a `GET`).
    pub fn of(method: &str) -> Option<Self> {
        Some(match method {
            "GET" | "HEAD" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Anyone: the pages, health, the stylesheet, the documents.
    Public,
    /// The admin token, refused in Kratos' shape (401 `errorGeneric`).
    KratosAdmin,
    /// The admin token, refused in authentik's shape (403).
    AuthentikAdmin,
}

/// What a route is, whichever path reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    RecoveryLink,
    RecoveryCode,
    RedeemAssertion,
    Events,
    Identities,
    Identity,
    IdentityByExternalId,
    IdentitySessions,
    IdentitySchema,
    AuthentikRecovery,
    AuthentikRecoveryEmail,
    RecoveryPage,
    RecoveryConfirm,
    RecoveryCodeForm,
    RecoveryPassword,
    RecoveryFlowBrowser,
    RecoveryFlowApi,
    RecoveryFlows,
    SettingsFlowBrowser,
    SettingsFlowApi,
    SettingsFlows,
    Settings,
    Whoami,
    Stylesheet,
    Alive,
    Ready,
    Metrics,
    OpenApi,
}

/// One route: its paths (`{name}` is one path segment), methods and guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub route: Route,
    pub paths: &'static [&'static str],
    pub verbs: &'static [Verb],
    pub guard: Guard,
    /// Whether the edge serves it: it has no sessions, no identity
    /// administration and no database of its own to report on.
    pub on_edge: bool,
}

impl Spec {
    /// Whether the route is Kratos' flow API (the recovery and settings
    /// flows, `whoami`), which SPAs on other origins call.
    pub fn is_flow_api(&self) -> bool {
        matches!(
            self.route,
            Route::RecoveryFlowBrowser
                | Route::RecoveryFlowApi
                | Route::RecoveryFlows
                | Route::RecoveryPage
                | Route::SettingsFlowBrowser
                | Route::SettingsFlowApi
                | Route::SettingsFlows
                | Route::Settings
                | Route::Whoami
        )
    }

    /// The `Allow` header of a 405 on this route.
    pub fn allow(&self) -> String {
        let mut allow: Vec<&str> = Vec::new();
        for verb in self.verbs {
            allow.push(verb.as_str());
            if *verb == Verb::Get {
                allow.push("HEAD");
            }
        }
        allow.join(",")
    }
}

use Guard::{AuthentikAdmin, KratosAdmin, Public};
use Verb::{Delete, Get, Patch, Post, Put};

const fn spec(
    route: Route,
    paths: &'static [&'static str],
    verbs: &'static [Verb],
    guard: Guard,
    on_edge: bool,
) -> Spec {
    Spec {
        route,
        paths,
        verbs,
        guard,
        on_edge,
    }
}

/// Every route of both servers. Kratos' admin API answers under `/admin`
/// and, as Connhex publishes it, under `/iam`.
#[rustfmt::skip]
pub const ROUTES: &[Spec] = &[
    spec(Route::RecoveryLink, &["/admin/recovery/link", "/iam/recovery/link"], &[Post], KratosAdmin, true),
    spec(Route::RecoveryCode, &["/admin/recovery/code", "/iam/recovery/code"], &[Post], KratosAdmin, true),
    spec(Route::RedeemAssertion, &["/admin/recovery/assertions", "/iam/recovery/assertions"], &[Post], KratosAdmin, false),
    spec(Route::Events, &["/admin/recovery/events", "/iam/recovery/events"], &[Get], KratosAdmin, false),
    spec(Route::Identities, &["/admin/identities", "/iam/identities"], &[Get, Post, Patch], KratosAdmin, false),
    spec(Route::Identity, &["/admin/identities/{id}", "/iam/identities/{id}"], &[Get, Put, Patch, Delete], KratosAdmin, false),
    spec(Route::IdentityByExternalId, &["/admin/identities/by/external/{external_id}", "/iam/identities/by/external/{external_id}"], &[Get], KratosAdmin, false),
    spec(Route::IdentitySessions, &["/admin/identities/{id}/sessions", "/iam/identities/{id}/sessions"], &[Delete], KratosAdmin, false),
    spec(Route::IdentitySchema, &["/schemas/{id}"], &[Get], Public, false),
    spec(Route::AuthentikRecovery, &["/api/v3/core/users/{id}/recovery/"], &[Post], AuthentikAdmin, true),
    spec(Route::AuthentikRecoveryEmail, &["/api/v3/core/users/{id}/recovery_email/"], &[Post], AuthentikAdmin, true),
    spec(Route::RecoveryPage, &["/self-service/recovery"], &[Get, Post], Public, true),
    spec(Route::RecoveryConfirm, &["/self-service/recovery/confirm"], &[Post], Public, true),
    spec(Route::RecoveryCodeForm, &["/self-service/recovery/code"], &[Post], Public, true),
    spec(Route::RecoveryPassword, &["/self-service/recovery/password"], &[Get, Post], Public, false),
    spec(Route::RecoveryFlowBrowser, &["/self-service/recovery/browser"], &[Get], Public, true),
    spec(Route::RecoveryFlowApi, &["/self-service/recovery/api"], &[Get], Public, true),
    spec(Route::RecoveryFlows, &["/self-service/recovery/flows"], &[Get], Public, true),
    spec(Route::SettingsFlowBrowser, &["/self-service/settings/browser"], &[Get], Public, false),
    spec(Route::SettingsFlowApi, &["/self-service/settings/api"], &[Get], Public, false),
    spec(Route::SettingsFlows, &["/self-service/settings/flows"], &[Get], Public, false),
    spec(Route::Settings, &["/self-service/settings"], &[Post], Public, false),
    spec(Route::Whoami, &["/sessions/whoami"], &[Get], Public, false),
    spec(Route::Stylesheet, &[crate::headers::STYLESHEET_PATH], &[Get], Public, true),
    spec(Route::Alive, &["/health/alive"], &[Get], Public, true),
    spec(Route::Ready, &["/health/ready"], &[Get], Public, false),
    spec(Route::Metrics, &["/metrics"], &[Get], KratosAdmin, false),
    spec(Route::OpenApi, &["/openapi.json"], &[Get], Public, false),
];

/// Which server is asking [`find`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Serve,
    Edge,
}

/// Why no route answers a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// 404, no body.
    NotFound,
    /// 405 with this `Allow`.
    MethodNotAllowed(String),
}

/// A request's route and the path segments its `{name}`s matched.
#[derive(Debug, PartialEq, Eq)]
pub struct Found<'a> {
    pub spec: &'static Spec,
    pub params: Vec<(&'static str, &'a str)>,
}

impl Found<'_> {
    /// The segment `{name}` matched.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// The route `server` answers `method` on `path` with.
pub fn find<'a>(server: Server, method: &str, path: &'a str) -> Result<Found<'a>, Miss> {
    for spec in ROUTES
        .iter()
        .filter(|s| server == Server::Serve || s.on_edge)
    {
        for pattern in spec.paths {
            let Some(params) = matches(pattern, path) else {
                continue;
            };
            return match Verb::of(method) {
                Some(verb) if spec.verbs.contains(&verb) => Ok(Found { spec, params }),
                _ => Err(Miss::MethodNotAllowed(spec.allow())),
            };
        }
    }
    Err(Miss::NotFound)
}

/// The `{name}`s of `pattern` that `path` fills, if it matches: each a
/// non-empty segment.
fn matches<'a>(pattern: &'static str, path: &'a str) -> Option<Vec<(&'static str, &'a str)>> {
    let mut params = Vec::new();
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) => match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !g.is_empty() => params.push((name, g)),
                Some(_) => return None,
                None if w == g => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_a_segment_parameter_finds_its_route_and_value() {
        let found = find(
            Server::Edge,
            "POST",
            "/api/v3/core/users/42/recovery_email/",
        )
        .unwrap();
        assert_eq!(found.spec.route, Route::AuthentikRecoveryEmail);
        assert_eq!(found.param("id"), Some("42"));
        assert_eq!(
            find(Server::Edge, "POST", "/api/v3/core/users//recovery/"),
            Err(Miss::NotFound)
        );
    }

    #[test]
    fn another_method_on_a_known_path_is_405_with_its_allow() {
        assert_eq!(
            find(Server::Serve, "DELETE", "/self-service/recovery"),
            Err(Miss::MethodNotAllowed("GET,HEAD,POST".into()))
        );
        assert_eq!(
            find(Server::Serve, "HEAD", "/health/alive")
                .unwrap()
                .spec
                .route,
            Route::Alive
        );
    }

    #[test]
    fn the_edge_answers_only_its_routes() {
        assert!(find(Server::Serve, "GET", "/admin/identities").is_ok());
        assert_eq!(
            find(Server::Edge, "GET", "/admin/identities"),
            Err(Miss::NotFound)
        );
    }

    #[test]
    fn no_path_belongs_to_two_routes() {
        let mut seen = std::collections::HashSet::new();
        for spec in ROUTES {
            for path in spec.paths {
                assert!(seen.insert(*path), "{path} twice");
            }
        }
    }
}
