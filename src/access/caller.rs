//! Who made a request, once authenticated: a token's name, scopes, services and limit state
//! (or the anonymous caller of a service without tokens, who may do everything).
//!
//! A [`Caller`] travels in the request's extensions from the access layer to the handlers: the
//! query handlers ask it which services are visible, and ingest passes every parsed batch
//! through it (it is the ingest [`Gate`]), so a reading for a service outside the token's list
//! is refused with the whole body, and the token's limits apply.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::limits::LimitState;
use super::token::{Scope, Scopes};
use crate::ingest::gate::{Gate, Refusal, SharedGate};
use crate::model::{BucketWidth, Reading, ServiceName};
use crate::telemetry::Metrics;

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller(Arc<Principal>);

#[derive(Debug)]
struct Principal {
    /// The token's name (`anonymous` without tokens): in logs and answers instead of the token.
    name: String,
    scopes: Scopes,
    /// `None`: every service.
    services: Option<BTreeSet<ServiceName>>,
    /// `None`: no limits (anonymous).
    limits: Option<Arc<LimitState>>,
    /// The store's bucket width, for the series guard.
    width: BucketWidth,
    metrics: Arc<Metrics>,
}

impl Caller {
    /// The caller of a service without tokens: every scope, every service, no limits.
    pub fn anonymous(metrics: Arc<Metrics>, width: BucketWidth) -> Self {
        Self(Arc::new(Principal {
            name: "anonymous".into(),
            scopes: Scopes::all(),
            services: None,
            limits: None,
            width,
            metrics,
        }))
    }

    /// The caller holding a configured token.
    pub(super) fn token(
        name: String,
        scopes: Scopes,
        services: Option<BTreeSet<ServiceName>>,
        limits: Arc<LimitState>,
        width: BucketWidth,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self(Arc::new(Principal {
            name,
            scopes,
            services,
            limits: Some(limits),
            width,
            metrics,
        }))
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Its scopes.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// True when it has `scope`.
    pub fn may(&self, scope: Scope) -> bool {
        self.0.scopes.has(scope)
    }

    /// The services it is limited to; `None` when it sees every service.
    pub fn services(&self) -> Option<&BTreeSet<ServiceName>> {
        self.0.services.as_ref()
    }

    /// True when it may read or write `service`.
    pub fn covers(&self, service: &ServiceName) -> bool {
        self.0.services.as_ref().is_none_or(|s| s.contains(service))
    }

    /// Its services as a list for messages (`checkout, search`).
    pub fn services_text(&self) -> String {
        match &self.0.services {
            None => "every service".into(),
            Some(set) => set
                .iter()
                .map(ServiceName::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The limit state it carries (to keep it across a reload).
    pub(super) fn limit_state(&self) -> Option<&Arc<LimitState>> {
        self.0.limits.as_ref()
    }

    /// This caller as the gate of its ingest requests.
    pub fn gate(&self) -> SharedGate {
        Arc::new(self.clone())
    }
}

impl Gate for Caller {
    fn admit(&self, readings: &[Reading]) -> Result<(), Refusal> {
        let refused: Vec<(usize, String)> = readings
            .iter()
            .enumerate()
            .filter_map(|(at, reading)| {
                let service = match reading {
                    Reading::Api(r) => &r.service,
                    Reading::Host(r) => &r.service,
                };
                (!self.covers(service)).then(|| {
                    (
                        at,
                        format!(
                            "token {} may not write service {service} (it may write {})",
                            self.name(),
                            self.services_text()
                        ),
                    )
                })
            })
            .collect();
        if !refused.is_empty() {
            self.0.metrics.access.deny("service_outside_scope");
            return Err(Refusal::Forbidden {
                message: format!(
                    "{} reading(s) are for services token {} may not write; nothing was accepted",
                    refused.len(),
                    self.name()
                ),
                readings: refused,
            });
        }
        let Some(limits) = &self.0.limits else {
            return Ok(());
        };
        limits
            .admit(self.name(), readings, self.0.width)
            .inspect_err(|refusal| {
                if let Refusal::Limited { limit, .. } = refusal {
                    let labels = [
                        ("token", self.name().to_owned()),
                        ("limit", (*limit).to_owned()),
                    ];
                    self.0.metrics.access.limited.get_or_create(&labels).inc();
                }
            })
    }
}
