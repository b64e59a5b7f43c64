//! The simulator's figures: rates, latency percentiles per request kind, errors and outcomes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct KindStats {
    pub count: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub calls: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub calls_per_sec: f64,
    pub requests: usize,
    pub requests_per_sec: f64,
    pub errors: usize,
    /// How calls ended: answered, voicemail, abandoned, held, hangup, error.
    pub outcomes: BTreeMap<String, usize>,
    /// Where calls went (`line support → pressed 1 → line hotline → ring 1 → answered`), with
    /// how many took each path.
    pub paths: BTreeMap<String, usize>,
    /// Verbs met that the simulator does not play.
    pub unsupported: BTreeMap<String, usize>,
    /// Per request kind (voice, dial-action, leg-status, status, ...) and `all`.
    pub kinds: BTreeMap<String, KindStats>,
    /// The first errors met (at most 20).
    pub first_errors: Vec<String>,
    #[serde(skip)]
    samples: BTreeMap<String, (Vec<Duration>, usize)>,
    /// With `--trace`: every request and answer, in order.
    #[serde(skip)]
    pub trace: Vec<String>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn stats(samples: &mut [Duration], errors: usize) -> KindStats {
    samples.sort_unstable();
    let at = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        ms(samples[i])
    };
    KindStats {
        count: samples.len(),
        errors,
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: samples.last().map_or(0.0, |d| ms(*d)),
    }
}

impl Report {
    pub(super) fn observe(&mut self, kind: &str, elapsed: Duration, ok: bool) {
        let entry = self.samples.entry(kind.to_owned()).or_default();
        entry.0.push(elapsed);
        if !ok {
            entry.1 += 1;
        }
    }

    pub(super) fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_errors.len() < 20 {
            self.first_errors.push(e);
        }
    }

    pub(super) fn finish(&mut self, calls: usize, concurrency: usize, elapsed: Duration) {
        self.calls = calls;
        self.concurrency = concurrency;
        self.seconds = elapsed.as_secs_f64();
        let mut all = Vec::new();
        let mut all_errors = 0;
        for (kind, (samples, errors)) in &mut self.samples {
            all.extend_from_slice(samples);
            all_errors += *errors;
            self.kinds.insert(kind.clone(), stats(samples, *errors));
        }
        self.requests = all.len();
        self.kinds.insert("all".into(), stats(&mut all, all_errors));
        let secs = self.seconds.max(1e-9);
        self.calls_per_sec = (calls as f64 / secs * 10.0).round() / 10.0;
        self.requests_per_sec = (self.requests as f64 / secs * 10.0).round() / 10.0;
    }

    /// The figures, for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} calls in {:.2} s at concurrency {}: {} calls/s, {} requests/s ({} requests)",
            self.calls,
            self.seconds,
            self.concurrency,
            self.calls_per_sec,
            self.requests_per_sec,
            self.requests
        );
        let _ = writeln!(
            s,
            "{:<14} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "request", "count", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for (kind, k) in &self.kinds {
            let _ = writeln!(
                s,
                "{kind:<14} {:>8} {:>7} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                k.count, k.errors, k.p50_ms, k.p90_ms, k.p99_ms, k.max_ms
            );
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "outcomes: {}", outcomes.join(", "));
        if self.paths.len() <= 10 {
            for (path, n) in &self.paths {
                let _ = writeln!(s, "path ×{n}: {path}");
            }
        }
        if !self.unsupported.is_empty() {
            let verbs: Vec<String> = self
                .unsupported
                .iter()
                .map(|(k, v)| format!("<{k}> ×{v}"))
                .collect();
            let _ = writeln!(s, "not played (unsupported verbs): {}", verbs.join(", "));
        }
        let _ = writeln!(s, "errors: {}", self.errors);
        for e in &self.first_errors {
            let _ = writeln!(s, "  {e}");
        }
        s
    }
}
