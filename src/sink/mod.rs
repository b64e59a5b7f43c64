//! Where facts go. The call service, the agents' own calls and the scheduled jobs hand each
//! [`Record`] to [`Sinks`] and move on: a sink never blocks and never changes the call path.
//! Sinks that do I/O (Slack today; the ledger and the dashboard next) put what they make on a
//! [`queue::DeliveryQueue`] and a worker delivers it.
//!
//! - [`log`]: one structured line per record
//! - [`outcomes`]: the call-outcome counters of `/metrics`
//! - [`slack`]: Block Kit messages, delivered through a queue
//! - [`queue`]: the bounded, ordered delivery queue with retries that I/O sinks share
//! - [`mask`]: caller numbers masked for private lines
//!
//! Adding a sink is a module that implements [`Sink`], plus its settings and one line in
//! [`build`].

pub mod log;
pub mod mask;
pub mod outcomes;
pub mod queue;
pub mod slack;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;

use prometheus_client::registry::Registry;

use crate::call::Fact;
use crate::config::Settings;
use crate::domain::{CallSid, Party};
use crate::time::Millis;

pub use mask::Privacy;

/// Something that happened, with where and when: the unit every sink consumes.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// About an inbound call: a fact the transition decided.
    Call {
        sid: CallSid,
        at: Millis,
        fact: Fact,
    },
    /// About an agent's own outbound call.
    AgentCall {
        call_id: Box<str>,
        at: Millis,
        agent: Box<str>,
        to: Party,
        kind: AgentCallKind,
    },
    /// From the scheduled jobs.
    Job { at: Millis, kind: JobNotice },
    /// An operator opened or closed a line (the admin API).
    Line {
        at: Millis,
        line: crate::domain::LineId,
        /// The line's name, for people.
        name: String,
        open: bool,
        /// Until when, if the change holds for a while.
        until: Option<Millis>,
        by: String,
    },
    /// What happened to the agents' legs of an inbound call (rung, taken, rang out).
    Leg {
        sid: CallSid,
        at: Millis,
        line: crate::domain::LineId,
        fact: crate::call::LegFact,
    },
    /// What became of a recording the ledger archives.
    Recording {
        at: Millis,
        call: CallSid,
        line: crate::domain::LineId,
        /// The caller, as the call's facts name them.
        from: crate::domain::Party,
        /// `voicemail` or `conversation`.
        kind: &'static str,
        fate: RecordingFate,
    },
    /// An operator set an agent away, or available again (the admin API).
    Away {
        at: Millis,
        /// The agent's name, for people.
        agent: String,
        away: bool,
        by: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordingFate {
    /// Stored: `link` is our signed link for people, when links can be signed.
    Archived {
        id: String,
        bytes: u64,
        sha256: String,
        link: Option<String>,
        link_expires: Option<Millis>,
    },
    /// Still not downloaded after `attempts`: the provider's link is the only copy, for now.
    Failed {
        id: String,
        attempts: u32,
        reason: String,
        provider_url: String,
    },
    /// Retention deleted the file.
    Deleted { id: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentCallKind {
    Started,
    /// The call arrived parked: the agent's connection has call parking enabled, so their calls
    /// hang until a Call Control command comes (said once per connection).
    Parked,
    Answered {
        after_secs: u64,
    },
    /// `talk_secs` is `None` when nobody answered; `cause` is the provider's hangup cause.
    Finished {
        talk_secs: Option<u64>,
        cause: Option<Box<str>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobNotice {
    /// The balance check read the available credit (every successful check; the dashboard
    /// shows it, nobody is notified).
    BalanceChecked {
        available: Decimal,
        currency: String,
    },
    /// Available credit fell below the threshold (`reminder` when it stays low).
    BalanceLow {
        available: Decimal,
        threshold: Decimal,
        currency: String,
        reminder: bool,
    },
    BalanceRecovered {
        available: Decimal,
        threshold: Decimal,
        currency: String,
    },
    AgentsChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// Agents left out because they cannot receive calls: (name, why). Said once per agent.
    AgentsUnreachable { agents: Vec<(String, String)> },
    /// A job failed `failures` times in a row.
    JobFailing {
        job: &'static str,
        failures: u32,
        error: String,
    },
}

/// A consumer of records.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Takes one record. Must not block: queue anything slow.
    fn accept(&self, record: &Record);

    /// At shutdown: deliver what is queued within `deadline`; what is left is counted and
    /// logged. Sinks without a queue have nothing to do.
    async fn flush(&self, _deadline: Duration) {}
}

/// Every sink, in the order they were added. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sinks(Arc<[Arc<dyn Sink>]>);

impl Sinks {
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> Sinks {
        Sinks(sinks.into())
    }

    /// Hands `record` to every sink.
    pub fn accept(&self, record: Record) {
        for sink in self.0.iter() {
            sink.accept(&record);
        }
    }

    /// Flushes every sink at once, each within `deadline`.
    pub async fn flush(&self, deadline: Duration) {
        futures_util::future::join_all(self.0.iter().map(|s| s.flush(deadline))).await;
    }
}

/// The sinks every record goes to: the log, the outcome counters, Slack when configured, then
/// whatever `extra` adds; with Slack's queue counters.
pub fn build(
    settings: &Settings,
    extra: Vec<Arc<dyn Sink>>,
    registry: &mut Registry,
) -> (Sinks, Option<Arc<queue::DeliveryStats>>) {
    let privacy = Privacy {
        mask_caller_numbers: settings.privacy.mask_caller_numbers,
    };
    let mut slack_stats = None;
    let mut sinks: Vec<Arc<dyn Sink>> = vec![
        Arc::new(log::LogSink { privacy }),
        Arc::new(outcomes::OutcomeMetrics::new(registry)),
    ];
    if let Some(url) = &settings.slack.webhook_url {
        let s = &settings.slack;
        let policy = queue::DeliveryPolicy {
            capacity: s.queue_capacity,
            max_attempts: s.max_attempts,
            backoff_base: Duration::from_millis(s.retry_base_ms),
            backoff_max: Duration::from_millis(s.retry_max_ms),
            batch: 1,
            linger: Duration::ZERO,
        };
        let timeout = Duration::from_secs(s.timeout_secs);
        let line_names = settings
            .lines
            .iter()
            .map(|l| (l.id.clone(), l.name.clone()))
            .collect();
        let style = slack::Style {
            mention: s.mention,
            line_names,
        };
        let slack = slack::SlackSink::start(url.clone(), timeout, policy, privacy, style, registry);
        slack_stats = Some(slack.stats());
        sinks.push(Arc::new(slack));
    }
    sinks.extend(extra);
    (Sinks::new(sinks), slack_stats)
}
