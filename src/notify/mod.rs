//! Telling the people who watch the line. The call path hands a [`Notification`] to a
//! [`Notifier`] and moves on: it never waits. The production notifier ([`Dispatcher`]) writes one
//! log line per notification and, when Slack is configured, queues a Block Kit message for the
//! delivery worker ([`queue`]).

pub mod mask;
pub mod queue;
pub mod slack;

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::call::{Millis, MissReason, Notice, NoticeKind};
use crate::domain::{CallSid, Party};

pub use mask::Privacy;
pub use queue::{DeliveryStats, SlackQueue};

/// Everything worth a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// About an inbound call.
    Call {
        sid: CallSid,
        at: Millis,
        notice: Notice,
    },
    /// About an agent's own outbound call.
    Outbound {
        call_id: Box<str>,
        at: Millis,
        agent: Box<str>,
        to: Party,
        kind: OutboundKind,
    },
    /// From the scheduled jobs.
    Job { at: Millis, kind: JobNotice },
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutboundKind {
    Started,
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
    /// A job failed `failures` times in a row.
    JobFailing {
        job: &'static str,
        failures: u32,
        error: String,
    },
}

pub trait Notifier: Send + Sync {
    /// Hands `notification` over. Must not block.
    fn notify(&self, notification: Notification);
}

/// The production notifier: one log line each, and a Slack message when Slack is configured.
pub struct Dispatcher {
    pub privacy: Privacy,
    pub slack: Option<(Arc<SlackQueue>, slack::Style)>,
}

impl Notifier for Dispatcher {
    fn notify(&self, n: Notification) {
        log(&n, &self.privacy);
        if let Some((queue, style)) = &self.slack {
            queue.push(slack::message(&n, &self.privacy, style));
        }
    }
}

impl<T: Notifier + ?Sized> Notifier for Arc<T> {
    fn notify(&self, notification: Notification) {
        (**self).notify(notification)
    }
}

/// One structured log line per notification; caller numbers masked as configured.
fn log(n: &Notification, privacy: &Privacy) {
    match n {
        Notification::Call { sid, notice, .. } => {
            let from = privacy.party(notice.from.as_str());
            let agent = |a: &Option<Box<str>>| a.as_deref().unwrap_or("an agent").to_owned();
            match &notice.kind {
                NoticeKind::Ringing { agents } => {
                    tracing::info!(call_sid = %sid, %from, line = %notice.line, agents, "incoming call ringing")
                }
                NoticeKind::Answered {
                    agent: a,
                    after_secs,
                } => {
                    tracing::info!(call_sid = %sid, %from, agent = agent(a), after_secs, "call answered")
                }
                NoticeKind::Missed { reason } => {
                    let reason = match reason {
                        MissReason::NoAnswer => "nobody answered",
                        MissReason::NoAgents => "no agent available",
                        MissReason::Recovered => "call state was lost",
                    };
                    tracing::info!(call_sid = %sid, %from, reason, "call missed, caller sent to voicemail")
                }
                NoticeKind::Voicemail { duration_secs, .. } => {
                    tracing::info!(call_sid = %sid, %from, duration_secs, "voicemail left")
                }
                NoticeKind::Abandoned { waited_secs } => {
                    tracing::info!(call_sid = %sid, %from, waited_secs, "caller hung up while agents rang")
                }
                NoticeKind::Finished {
                    agent: a,
                    talk_secs,
                } => {
                    tracing::info!(call_sid = %sid, %from, agent = agent(a), talk_secs, "call finished")
                }
            }
        }
        Notification::Outbound {
            call_id,
            agent,
            to,
            kind,
            ..
        } => {
            let to = privacy.party(to.as_str());
            match kind {
                OutboundKind::Started => {
                    tracing::info!(%call_id, %agent, %to, "agent's outbound call started")
                }
                OutboundKind::Answered { after_secs } => {
                    tracing::info!(%call_id, %agent, %to, after_secs, "agent's outbound call answered")
                }
                OutboundKind::Finished { talk_secs, cause } => {
                    tracing::info!(%call_id, %agent, %to, ?talk_secs, cause = cause.as_deref(), "agent's outbound call finished")
                }
            }
        }
        Notification::Job { kind, .. } => match kind {
            JobNotice::BalanceLow {
                available,
                threshold,
                currency,
                reminder,
            } => {
                tracing::warn!(%available, %threshold, %currency, reminder, "account balance low")
            }
            JobNotice::BalanceRecovered {
                available,
                currency,
                ..
            } => tracing::info!(%available, %currency, "account balance recovered"),
            JobNotice::AgentsChanged { added, removed } => {
                tracing::info!(?added, ?removed, "agent list changed")
            }
            JobNotice::JobFailing {
                job,
                failures,
                error,
            } => tracing::error!(job, failures, %error, "job failing repeatedly"),
        },
    }
}
