//! `GET /metrics`: Prometheus (OpenMetrics text) through prometheus-client. Request counts,
//! webhook latency and call outcomes are recorded as they happen; everything that is already
//! counted elsewhere (notifications, refusals, live calls, agents, jobs, balance) is read at
//! scrape time by a collector, so there is one source of truth for each number.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::startup::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    outcomes: Family<OutcomeLabels, Counter>,
    /// The live-call count read (asynchronously) just before encoding.
    live_calls: Arc<AtomicI64>,
    state: Arc<OnceLock<Weak<AppState>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchboard");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        let outcomes = Family::<OutcomeLabels, Counter>::default();
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
        registry.register(
            "calls",
            "Inbound calls by outcome (answered, voicemail, missed, abandoned, refused)",
            outcomes.clone(),
        );
        let live_calls = Arc::new(AtomicI64::new(0));
        let state = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(StateCollector {
            live_calls: live_calls.clone(),
            state: state.clone(),
        }));
        Metrics {
            registry,
            requests,
            latency,
            outcomes,
            live_calls,
            state,
        }
    }

    /// Lets the collector read the application's counters (held weakly: no cycle).
    pub fn attach(&self, state: &Arc<AppState>) {
        let _ = self.state.set(Arc::downgrade(state));
    }

    /// One HTTP request answered. `route` is the matched pattern, never the raw path.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
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

    pub fn call_ended(&self, outcome: &str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The exposition, with `live_calls` as just read from the store (`None` if unreachable).
    pub fn encode(&self, live_calls: Option<usize>) -> String {
        self.live_calls
            .store(live_calls.map_or(-1, |n| n as i64), Ordering::Relaxed);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[derive(Debug)]
struct StateCollector {
    live_calls: Arc<AtomicI64>,
    state: Arc<OnceLock<Weak<AppState>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppState")
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabels {
    currency: String,
}

impl Collector for StateCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some(state) = self.state.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let relaxed = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut enc,
            "live_calls",
            "Inbound calls in progress (-1: the call store is unreachable)",
            self.live_calls.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut enc,
            "ready",
            "1 while ready to take calls",
            i64::from(state.ready.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut enc,
            "signature_rejections",
            "Webhooks without a valid signature",
            relaxed(&state.counters.rejected_signatures),
        )?;
        counter(
            &mut enc,
            "stale_calls",
            "Calls forgotten without their final callback",
            state.store.stale_total(),
        )?;
        gauge(
            &mut enc,
            "agents_known",
            "Agents in the roster",
            state.roster.all().len() as i64,
        )?;
        gauge(
            &mut enc,
            "agents_available",
            "Agents not busy on a call of their own",
            state.roster.available().len() as i64,
        )?;
        if let Some(stats) = &state.slack {
            let c = ConstCounter::new(0u64);
            let mut family = enc.encode_descriptor(
                "notifications",
                "Slack messages by fate: queued, sent, retried, and each kind of drop",
                None,
                c.metric_type(),
            )?;
            for (name, value) in [
                ("queued", relaxed(&stats.queued)),
                ("sent", relaxed(&stats.sent)),
                ("retried", relaxed(&stats.retried)),
                ("dropped_full", relaxed(&stats.dropped_full)),
                ("dropped_rejected", relaxed(&stats.dropped_rejected)),
                ("dropped_failed", relaxed(&stats.dropped_failed)),
                ("dropped_shutdown", relaxed(&stats.dropped_shutdown)),
            ] {
                let labels = StateLabels {
                    state: name.to_owned(),
                };
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(jobs) = &state.jobs {
            let c = ConstCounter::new(0u64);
            let mut family = enc.encode_descriptor(
                "job_runs",
                "Scheduled job runs by job and result",
                None,
                c.metric_type(),
            )?;
            for (job, ok, failed) in jobs.run_counts() {
                for (result, value) in [("ok", ok), ("error", failed)] {
                    let labels = JobLabels {
                        job: job.to_owned(),
                        result: result.to_owned(),
                    };
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
            if let Some((available, currency)) = jobs.last_balance() {
                let g = ConstGauge::new(available);
                let mut family = enc.encode_descriptor(
                    "balance_available",
                    "Available credit at the last balance check",
                    None,
                    g.metric_type(),
                )?;
                g.encode(family.encode_family(&CurrencyLabels { currency })?)?;
            }
        }
        Ok(())
    }
}
