//! `switchboard_calls_total{outcome}`: every call taken is counted once, when its outcome is
//! final (a missed call waits for its voicemail: see [`crate::call::FactKind::Ended`]), and every
//! call refused past capacity is counted as `refused`; each under its line.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Record, Sink};
use crate::call::FactKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
    line: String,
}

pub struct OutcomeMetrics {
    calls: Family<OutcomeLabels, Counter>,
}

impl OutcomeMetrics {
    pub fn new(registry: &mut Registry) -> OutcomeMetrics {
        let calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "calls",
            "Inbound calls by final outcome (answered, voicemail, missed, abandoned, closed, refused) and line",
            calls.clone(),
        );
        OutcomeMetrics { calls }
    }
}

impl Sink for OutcomeMetrics {
    fn accept(&self, record: &Record) {
        let Record::Call { fact, .. } = record else {
            return;
        };
        let outcome = match &fact.kind {
            FactKind::Refused { .. } => "refused",
            kind => match kind.final_outcome() {
                Some(outcome) => outcome.label(),
                None => return,
            },
        };
        let line = fact.line.as_str().to_owned();
        self.calls
            .get_or_create(&OutcomeLabels { outcome, line })
            .inc();
    }
}
