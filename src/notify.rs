//! Where [`Notice`]s go. For now they are logged; the Slack delivery queue plugs in behind the same
//! trait, so the call path only ever hands a notice over and never waits.

use crate::call::{MissReason, Notice};
use crate::domain::CallSid;

pub trait Notifier: Send + Sync {
    /// Hands `notice` about call `call` over. Must not block.
    fn notify(&self, call: &CallSid, notice: &Notice);
}

/// Writes each notice as one structured log line.
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, call: &CallSid, notice: &Notice) {
        match notice {
            Notice::Ringing { from, to, agents } => {
                tracing::info!(call_sid = %call, %from, %to, agents, "incoming call ringing")
            }
            Notice::Answered {
                agent, after_secs, ..
            } => {
                tracing::info!(call_sid = %call, agent = agent.as_deref().unwrap_or("an agent"), after_secs, "call answered")
            }
            Notice::Missed { reason, .. } => {
                let reason = match reason {
                    MissReason::NoAnswer => "nobody answered",
                    MissReason::NoAgents => "no agent available",
                    MissReason::Recovered => "call state was lost",
                };
                tracing::info!(call_sid = %call, reason, "call missed, caller sent to voicemail")
            }
            Notice::Voicemail { duration_secs, .. } => {
                tracing::info!(call_sid = %call, duration_secs, "voicemail left")
            }
            Notice::Abandoned { waited_secs, .. } => {
                tracing::info!(call_sid = %call, waited_secs, "caller hung up while agents rang")
            }
            Notice::Finished {
                agent, talk_secs, ..
            } => {
                tracing::info!(call_sid = %call, agent = agent.as_deref().unwrap_or("an agent"), talk_secs, "call finished")
            }
        }
    }
}
