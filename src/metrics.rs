//! `GET /metrics`: Prometheus (OpenMetrics text) through prometheus-client. There is one
//! [`Registry`]; every component registers its own counters, gauges or collector in it when it
//! is built (the call service, the store, the sinks, the agents, the jobs, the lease, the
//! signature checks, readiness), so this module knows none of them. What it owns is the HTTP
//! layer's own metrics: requests by route and status, and webhook latency.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// The registry every component registers in, with Switchboard's prefix.
pub(crate) fn registry() -> Registry {
    Registry::with_prefix("switchboard")
}

/// The exposition of everything registered.
pub(crate) fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// Requests answered, and how long provider webhooks took.
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    bad: Family<RouteLabels, Counter>,
}

impl HttpMetrics {
    pub(crate) fn new(registry: &mut Registry) -> HttpMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Time to answer a provider webhook",
            latency.clone(),
        );
        let bad = Family::<RouteLabels, Counter>::default();
        registry.register(
            "bad_requests",
            "Webhooks that could not be used (acknowledged, logged), by route",
            bad.clone(),
        );
        HttpMetrics {
            requests,
            latency,
            bad,
        }
    }

    /// One webhook that could not be used.
    pub(crate) fn bad_request(&self, route: &str) {
        let labels = RouteLabels {
            route: route.to_owned(),
        };
        self.bad.get_or_create(&labels).inc();
    }

    /// One HTTP request answered. `route` is the matched pattern, never the raw path.
    pub(crate) fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
        if route.starts_with("/texml") || route.starts_with("/telnyx") {
            self.latency
                .get_or_create(&RouteLabels {
                    route: route.to_owned(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }
}
