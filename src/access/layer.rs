//! The access layer in front of every HTTP route (the API, the console, the Prometheus API, the
//! OTLP/HTTP receiver): checks `Host`, authenticates, checks the endpoint's scope and the service
//! it names, and hands the [`Caller`] to the handler in the request's extensions.
//!
//! What each endpoint needs ([`classify`]) is decided here, in one table, by method and path.
//! A path the table does not name needs a valid token of any scope (so a 404 tells strangers
//! nothing): a new route must get its line here, or every token may call it.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use percent_encoding::percent_decode_str;

use super::token::Scope;
use super::{Access, Caller, Denial};
use crate::model::ServiceName;

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: liveness, readiness, the console's static files, and `/metrics` with
    /// `--public-metrics`.
    Public,
    /// The read scope, and the service named by the `service` query parameter covered (a token
    /// limited to services must name one).
    ReadServiceParam,
    /// The read scope, and the service in the path (`/services/{service}...`) covered.
    ReadServicePath,
    /// The read scope; the handler shows only the services the token covers (PromQL).
    ReadFiltered,
    /// The read scope for every service: the endpoint spans all of them.
    ReadAll,
    /// The write scope; each reading's service is checked by ingest's gate.
    Write,
    /// The admin scope.
    Admin,
    /// Any valid token: paths no route serves.
    Any,
}

/// What `method path` needs.
pub fn classify(method: &Method, path: &str, public_metrics: bool) -> Need {
    match path {
        "/healthz" | "/readyz" | "/readyz/ingest" => Need::Public,
        "/metrics" if public_metrics => Need::Public,
        "/metrics" => Need::ReadAll,
        "/v1/metrics" => Need::Write,
        "/v1/readings" | "/v1/series" | "/v1/latest" | "/v1/stats" | "/v1/stats/host" => {
            Need::ReadServiceParam
        }
        "/v1/targets" | "/api/v1/rules" | "/api/v1/alerts" | "/" | "/alerts" => Need::ReadAll,
        "/-/reload" => Need::Admin,
        _ if path.starts_with("/api/v1/") => Need::ReadFiltered,
        _ if path.starts_with("/services/") => Need::ReadServicePath,
        _ if path.starts_with("/assets/") && (method == Method::GET || method == Method::HEAD) => {
            Need::Public
        }
        _ => Need::Any,
    }
}

/// The middleware: see the module note.
pub async fn check(State(access): State<Access>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let need = classify(&method, &path, access.public_metrics());
    let browser = method == Method::GET || method == Method::HEAD;
    match admit(&access, &request, need, browser) {
        Ok(Some(caller)) => {
            request.extensions_mut().insert(caller);
        }
        Ok(None) => {}
        Err(denial) => {
            access.count(&denial);
            tracing::debug!(reason = denial.reason(), %method, %path, "request refused by access control");
            return denial.into_response(browser);
        }
    }
    next.run(request).await
}

/// The caller of `request`, `None` for a public endpoint.
fn admit(
    access: &Access,
    request: &Request,
    need: Need,
    browser: bool,
) -> Result<Option<Caller>, Denial> {
    let path = request.uri().path();
    // Probes name the address they reach (a pod IP, a container name): not checked.
    let probe = matches!(path, "/healthz" | "/readyz" | "/readyz/ingest")
        || (need == Need::Public && path == "/metrics");
    if !probe {
        let host = request
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("?"));
        if !access.hosts().allows(host) {
            return Err(Denial::HostNotAllowed(host.unwrap_or_default().to_owned()));
        }
    }
    if need == Need::Public {
        return Ok(None);
    }
    let caller = access.authenticate(request.headers(), browser)?;
    let what = || format!("{} {path}", request.method());
    let scope = match need {
        Need::Write => Scope::Write,
        Need::Admin => Scope::Admin,
        Need::Any => return Ok(Some(caller)),
        _ => Scope::Read,
    };
    if !caller.may(scope) {
        return Err(Denial::MissingScope {
            token: caller.name().to_owned(),
            has: caller.scopes().to_string(),
            needs: scope,
            what: what(),
        });
    }
    let outside = |field: &'static str, problem: String| Denial::ServiceOutsideScope {
        token: caller.name().to_owned(),
        field,
        problem,
    };
    if caller.services().is_none() {
        return Ok(Some(caller));
    }
    match need {
        Need::ReadAll => {
            return Err(outside(
                "services",
                format!(
                    "{} spans every service, and this token sees only {}",
                    what(),
                    caller.services_text()
                ),
            ))
        }
        Need::ReadServiceParam => {
            let query = request.uri().query().unwrap_or("");
            let named: Vec<String> = form_urlencoded::parse(query.as_bytes())
                .filter(|(key, _)| key == "service")
                .map(|(_, value)| value.into_owned())
                .collect();
            if named.is_empty() {
                return Err(outside(
                    "service",
                    format!(
                        "name one of its services ({}) with service=",
                        caller.services_text()
                    ),
                ));
            }
            for name in named {
                check_service(&caller, &name).map_err(|p| outside("service", p))?;
            }
        }
        Need::ReadServicePath => {
            let segment = path
                .trim_start_matches("/services/")
                .split('/')
                .next()
                .unwrap_or("");
            let name = percent_decode_str(segment).decode_utf8_lossy();
            check_service(&caller, &name).map_err(|p| outside("service", p))?;
        }
        _ => {}
    }
    Ok(Some(caller))
}

/// Refuses a service the caller does not cover. A name that is not a valid service name is left
/// to the handler, whose 400 reads nothing.
fn check_service(caller: &Caller, name: &str) -> Result<(), String> {
    match ServiceName::parse(name) {
        Ok(service) if !caller.covers(&service) => Err(format!(
            "service {service} is not one of its services ({})",
            caller.services_text()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_its_need() {
        let get = Method::GET;
        let post = Method::POST;
        for (method, path, need) in [
            (&get, "/healthz", Need::Public),
            (&get, "/readyz", Need::Public),
            (&get, "/readyz/ingest", Need::Public),
            (&get, "/metrics", Need::ReadAll),
            (&post, "/v1/metrics", Need::Write),
            (&get, "/v1/readings", Need::ReadServiceParam),
            (&get, "/v1/stats/host", Need::ReadServiceParam),
            (&get, "/v1/latest", Need::ReadServiceParam),
            (&get, "/api/v1/query", Need::ReadFiltered),
            (&post, "/api/v1/query_range", Need::ReadFiltered),
            (&get, "/api/v1/label/service/values", Need::ReadFiltered),
            (&get, "/api/v1/rules", Need::ReadAll),
            (&get, "/api/v1/alerts", Need::ReadAll),
            (&get, "/v1/targets", Need::ReadAll),
            (&post, "/-/reload", Need::Admin),
            (&get, "/", Need::ReadAll),
            (&get, "/alerts", Need::ReadAll),
            (&get, "/services/checkout", Need::ReadServicePath),
            (&get, "/services/checkout/readings", Need::ReadServicePath),
            (&get, "/assets/console.css", Need::Public),
            (&post, "/assets/console.css", Need::Any),
            (&get, "/no/such/path", Need::Any),
        ] {
            assert_eq!(classify(method, path, false), need, "{method} {path}");
        }
        assert_eq!(classify(&get, "/metrics", true), Need::Public);
    }

    /// A route added to the API or the console without its line in [`classify`] would be open
    /// to every token: each route the routers declare must have a need of its own.
    #[test]
    fn every_declared_route_is_in_the_table() {
        let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
        let sources = [include_str!("../api.rs"), include_str!("../console.rs")];
        let paths: Vec<String> = sources
            .iter()
            .flat_map(|source| route.captures_iter(source))
            .map(|c| c[1].replace("{name}", "x").replace("{service}", "checkout"))
            .collect();
        assert!(paths.len() > 25, "{paths:?}");
        for path in paths {
            let need = classify(&Method::GET, &path, false);
            assert_ne!(need, Need::Any, "{path} is not in access::layer::classify");
        }
    }
}
