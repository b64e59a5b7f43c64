//! One structured log line per record, caller numbers masked as configured. The lines go through
//! the non-blocking writer of [`crate::telemetry`], so logging costs the call path little.

use super::{AgentCallKind, JobNotice, Privacy, Record, Sink};
use crate::call::{FactKind, Outcome};

pub struct LogSink {
    pub privacy: Privacy,
}

impl Sink for LogSink {
    fn accept(&self, record: &Record) {
        log(record, &self.privacy)
    }
}

fn agent(a: &Option<Box<str>>) -> &str {
    a.as_deref().unwrap_or("an agent")
}

fn log(record: &Record, privacy: &Privacy) {
    match record {
        Record::Call { sid, fact, .. } => {
            let from = privacy.party(fact.from.as_str());
            match &fact.kind {
                FactKind::Ringing { agents } => {
                    tracing::info!(call_sid = %sid, %from, line = %fact.to, agents, "incoming call ringing")
                }
                FactKind::Answered {
                    agent: a,
                    after_secs,
                } => {
                    tracing::info!(call_sid = %sid, %from, agent = agent(a), after_secs, "call answered")
                }
                FactKind::SentToVoicemail { reason } => {
                    let reason = reason.describe();
                    tracing::info!(call_sid = %sid, %from, reason, "call missed, caller sent to voicemail")
                }
                FactKind::VoicemailLeft { duration_secs, .. } => {
                    tracing::info!(call_sid = %sid, %from, duration_secs, "voicemail left")
                }
                FactKind::ConversationRecorded { duration_secs, .. } => {
                    tracing::info!(call_sid = %sid, duration_secs, "conversation recording ready")
                }
                FactKind::Controlled { action, who, by } => {
                    tracing::info!(call_sid = %sid, action, who = %who, by = %by, "conference call controlled")
                }
                FactKind::ConferenceRecorded { duration_secs, .. } => {
                    tracing::info!(call_sid = %sid, duration_secs, "conference recording ready")
                }
                FactKind::Ended { outcome, settled } => match outcome {
                    Outcome::Abandoned { waited_secs } => {
                        tracing::info!(call_sid = %sid, %from, waited_secs, "caller hung up while agents rang")
                    }
                    Outcome::Answered {
                        agent: a,
                        talk_secs,
                    } => {
                        tracing::info!(call_sid = %sid, %from, agent = agent(a), talk_secs, "call finished")
                    }
                    other => {
                        tracing::info!(call_sid = %sid, %from, outcome = other.label(), settled, "call ended")
                    }
                },
                FactKind::Settled { outcome } => {
                    tracing::info!(call_sid = %sid, %from, outcome = outcome.label(), "call outcome settled")
                }
                FactKind::TurnedAway { reason } => {
                    tracing::warn!(call_sid = %sid, %from, line = %fact.line, reason, "caller turned away")
                }
                FactKind::AfterHours { action } => {
                    tracing::info!(call_sid = %sid, %from, line = %fact.line, action, "call after hours")
                }
                FactKind::Refused { live_calls } => {
                    tracing::warn!(call_sid = %sid, %from, live_calls, "too many live calls: new caller asked to call back later")
                }
            }
        }
        Record::AgentCall {
            call_id,
            agent,
            to,
            kind,
            ..
        } => {
            let to = privacy.party(to.as_str());
            match kind {
                AgentCallKind::Started => {
                    tracing::info!(%call_id, %agent, %to, "agent's outbound call started")
                }
                AgentCallKind::Parked => {
                    tracing::warn!(%call_id, %agent, "agent's calls arrive parked: disable call parking on their connection, or their calls hang")
                }
                AgentCallKind::Answered { after_secs } => {
                    tracing::info!(%call_id, %agent, %to, after_secs, "agent's outbound call answered")
                }
                AgentCallKind::Finished { talk_secs, cause } => {
                    tracing::info!(%call_id, %agent, %to, ?talk_secs, cause = cause.as_deref(), "agent's outbound call finished")
                }
            }
        }
        Record::Job { kind, .. } => match kind {
            // Logged by the check itself.
            JobNotice::BalanceChecked { .. } => {}
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
            JobNotice::AgentsUnreachable { agents } => {
                tracing::warn!(?agents, "agents cannot receive calls")
            }
            JobNotice::JobFailing {
                job,
                failures,
                error,
            } => tracing::error!(job, failures, %error, "job failing repeatedly"),
        },
        Record::Line {
            line,
            open,
            until,
            by,
            ..
        } => tracing::info!(
            line = line.as_str(),
            open,
            until,
            by,
            "line opened or closed by an operator"
        ),
        Record::Leg { sid, fact, .. } => tracing::debug!(call_sid = %sid, ?fact, "legs"),
        Record::Recording {
            call, kind, fate, ..
        } => match fate {
            crate::sink::RecordingFate::Archived {
                id, bytes, sha256, ..
            } => tracing::info!(
                call_sid = %call,
                kind,
                id,
                bytes,
                sha256,
                "recording archived"
            ),
            crate::sink::RecordingFate::Failed {
                id,
                attempts,
                reason,
                ..
            } => tracing::error!(
                call_sid = %call,
                kind,
                id,
                attempts,
                reason,
                "recording NOT archived: the provider's copy expires soon"
            ),
            crate::sink::RecordingFate::Deleted { id } => {
                tracing::info!(call_sid = %call, kind, id, "recording deleted (retention)")
            }
        },
        Record::Away {
            agent, away, by, ..
        } => tracing::info!(
            agent,
            away,
            by,
            "agent set away or available by an operator"
        ),
    }
}
