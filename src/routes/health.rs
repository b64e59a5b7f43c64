//! Liveness, readiness and metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Data;
use actix_web::HttpResponse;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{text, Context};

/// Whether this replica takes calls: false until serving and again while shutting down, when the
/// load balancer must stop sending new requests before the listener closes.
#[derive(Clone)]
pub(crate) struct Readiness {
    serving: Arc<AtomicBool>,
    gauge: Gauge,
}

impl Readiness {
    pub(crate) fn new(registry: &mut Registry) -> Readiness {
        let gauge = Gauge::default();
        registry.register("ready", "1 while ready to take calls", gauge.clone());
        Readiness {
            serving: Arc::new(AtomicBool::new(false)),
            gauge,
        }
    }

    pub(crate) fn set(&self, serving: bool) {
        self.serving.store(serving, Ordering::Relaxed);
        self.gauge.set(i64::from(serving));
    }

    pub(crate) fn serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }
}

pub(super) async fn healthz() -> HttpResponse {
    text(HttpResponse::Ok(), "ok\n".into())
}

/// Ready once serving, not while starting or shutting down, and not while the configured Redis
/// does not answer.
pub(super) async fn readyz(cx: Data<Context>) -> HttpResponse {
    let serving = cx.readiness.serving();
    let store = tokio::time::timeout(Duration::from_millis(500), cx.service.store_answers()).await;
    let why = match (serving, store) {
        (false, _) => "not ready: starting or shutting down\n",
        (true, Ok(true)) => return text(HttpResponse::Ok(), "ready\n".into()),
        (true, _) => "not ready: the call store (Redis) does not answer\n",
    };
    text(HttpResponse::ServiceUnavailable(), why.into())
}

pub(super) async fn metrics(cx: Data<Context>) -> HttpResponse {
    cx.service.refresh_gauges().await;
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(crate::metrics::encode(&cx.metrics))
}
