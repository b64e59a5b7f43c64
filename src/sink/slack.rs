//! The Slack sink: Block Kit messages (a header, a body, and a context line with line, CallSid
//! and time, plus a top-level `text` fallback for notifications), posted to an incoming webhook
//! through a [`DeliveryQueue`]. Messages are built as JSON values (never strings pasted
//! together), within Slack's limits, with caller-controlled text escaped for mrkdwn.
//!
//! Slack hears about the facts people act on: a call ringing, answered, sent to voicemail, a
//! voicemail left, a caller who hung up, a finished conversation; agents' own calls; the jobs'
//! alerts. Other facts (a missed call's outcome settling, a refusal) are logged and counted only.

use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::registry::Registry;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use super::queue::{Attempt, Deliver, DeliveryPolicy, DeliveryQueue};
use super::{AgentCallKind, JobNotice, Privacy, Record, RecordingFate, Sink};
use crate::call::{FactKind, MissReason, Outcome};
pub use crate::config::Mention;
use crate::retry::retry_after;
use crate::time::Millis;

/// Slack's limits (docs.slack.dev, Block Kit reference).
pub const MAX_HEADER: usize = 150;
pub const MAX_SECTION: usize = 3000;
pub const MAX_BLOCKS: usize = 50;

/// How messages look: who is pinged, and what each configured line is called.
#[derive(Debug, Clone, Default)]
pub struct Style {
    pub mention: Mention,
    /// Configured lines' names by id; empty without lines (the context shows the number).
    pub line_names: std::collections::HashMap<crate::domain::LineId, String>,
}

impl Mention {
    fn prefix(self) -> &'static str {
        match self {
            Mention::None => "",
            Mention::Here => "<!here> ",
            Mention::Channel => "<!channel> ",
        }
    }
}

/// Escapes text for mrkdwn: only `&`, `<` and `>` (Slack's formatting reference).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if s.chars().count() > max => format!("{}…", &s[..i]),
        _ => s.to_owned(),
    }
}

/// `42 s`, `3 min 5 s`, `1 h 2 min`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 && s % 60 == 0 => format!("{} min", s / 60),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s % 3600 < 60 => format!("{} h", s / 3600),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A time Slack shows in each reader's own time zone, with a UTC fallback.
fn when(at: Millis) -> String {
    let secs = (at / 1000) as i64;
    let fallback = OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| secs.to_string());
    format!("<!date^{secs}^{{date_short_pretty}} {{time_secs}}|{fallback}>")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The Slack sink: renders records worth a message and queues them for delivery.
pub struct SlackSink {
    queue: DeliveryQueue<Value>,
    privacy: Privacy,
    style: Style,
}

impl SlackSink {
    /// The delivery queue's counters.
    pub fn stats(&self) -> std::sync::Arc<crate::sink::queue::DeliveryStats> {
        self.queue.stats()
    }

    /// Starts delivering to the incoming webhook `url` (a secret: never logged).
    pub fn start(
        url: SecretString,
        timeout: Duration,
        policy: DeliveryPolicy,
        privacy: Privacy,
        style: Style,
        registry: &mut Registry,
    ) -> SlackSink {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let webhook = Webhook { http, url };
        SlackSink {
            queue: DeliveryQueue::start("Slack", policy, webhook, registry, "notifications"),
            privacy,
            style,
        }
    }
}

#[async_trait]
impl Sink for SlackSink {
    fn accept(&self, record: &Record) {
        if let Some(message) = message(record, &self.privacy, &self.style) {
            self.queue.push(message);
        }
    }

    async fn flush(&self, deadline: Duration) {
        self.queue.shutdown(deadline).await;
    }
}

/// Posts one message to an incoming webhook.
struct Webhook {
    http: reqwest::Client,
    url: SecretString,
}

#[async_trait]
impl Deliver<Value> for Webhook {
    async fn attempt(&self, message: &Value) -> Attempt {
        let sent = self
            .http
            .post(self.url.expose_secret())
            .json(message)
            .send()
            .await;
        let res = match sent {
            Ok(res) => res,
            // The error's URL is the secret webhook: never log it.
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    reason: e.without_url().to_string(),
                }
            }
        };
        let status = res.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let wait = retry_after(res.headers());
        let reason: String = res
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = Some(wait.unwrap_or(Duration::from_secs(1)));
            Attempt::Retry {
                after,
                reason: format!("429 {reason}"),
            }
        } else if status.is_server_error() {
            Attempt::Retry {
                after: None,
                reason: format!("{status} {reason}"),
            }
        } else {
            Attempt::Rejected(format!("{status} {reason}"))
        }
    }
}

/// The message for one record, if it is worth one.
pub fn message(record: &Record, privacy: &Privacy, style: &Style) -> Option<Value> {
    let (title, body, context) = content(record, privacy, style)?;
    let header = cut(&title, MAX_HEADER);
    let body = cut(&body, MAX_SECTION);
    let blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": body}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&context, MAX_SECTION)}]}),
    ];
    debug_assert!(blocks.len() <= MAX_BLOCKS);
    Some(json!({
        "text": cut(&format!("{header}: {body}"), MAX_SECTION),
        "blocks": blocks,
    }))
}

fn content(record: &Record, privacy: &Privacy, style: &Style) -> Option<(String, String, String)> {
    let mention = style.mention.prefix();
    Some(match record {
        Record::Call { sid, at, fact } => {
            let from = escape(&privacy.party(fact.from.as_str()));
            let agent = |a: &Option<Box<str>>| match a {
                Some(name) => format!("*{}*", escape(name)),
                None => "An agent".to_owned(),
            };
            let (title, body) = match &fact.kind {
                FactKind::Ringing { agents } => (
                    ":telephone_receiving: Incoming call",
                    format!(
                        "{mention}*{from}* is calling. {} ringing.",
                        plural(*agents, "agent is", "agents are")
                    ),
                ),
                FactKind::Answered { agent: a, after_secs } => (
                    ":white_check_mark: Call answered",
                    format!("{} answered *{from}* after {}.", agent(a), duration(*after_secs)),
                ),
                FactKind::SentToVoicemail { reason } => (
                    ":warning: Missed call",
                    match reason {
                        MissReason::NoAnswer => format!(
                            "Nobody answered *{from}*. The caller is being asked to leave a voicemail."
                        ),
                        MissReason::NoAgents => format!(
                            "No agent was available for *{from}*. The caller is being asked to leave a voicemail."
                        ),
                        MissReason::Recovered => format!(
                            "Switchboard lost track of the call from *{from}* and asked the caller to leave a voicemail."
                        ),
                        MissReason::Anonymous => format!(
                            "*{from}* hid their number: anonymous callers are asked to leave a voicemail."
                        ),
                        MissReason::Chosen => format!(
                            "*{from}* chose voicemail at the menu and is being asked to leave a message."
                        ),
                    },
                ),
                FactKind::VoicemailLeft {
                    url, duration_secs, ..
                } => (
                    ":incoming_envelope: New voicemail",
                    format!(
                        "{mention}*{from}* left a voicemail ({}): <{}|listen to it>. \
                         Provider links expire soon: download it if you need to keep it.",
                        duration(u64::from(*duration_secs)),
                        escape(url)
                    ),
                ),
                FactKind::Ended {
                    outcome: Outcome::Abandoned { waited_secs },
                    ..
                } => (
                    ":no_entry: Caller hung up",
                    format!(
                        "*{from}* hung up after waiting {}, before anyone answered.",
                        duration(*waited_secs)
                    ),
                ),
                FactKind::Ended {
                    outcome: Outcome::Answered { agent: a, talk_secs },
                    ..
                } => (
                    ":telephone_receiver: Call finished",
                    format!("{} talked with *{from}* for {}.", agent(a), duration(*talk_secs)),
                ),
                FactKind::Controlled { action, who, by } => (
                    ":control_knobs: Call control",
                    {
                        let (by, who) = (escape(by), escape(who));
                        match *action {
                            "mute" => format!("*{by}* muted {who}."),
                            "unmute" => format!("*{by}* unmuted {who}."),
                            "hold" => format!("*{by}* put {who} on hold."),
                            "resume" => format!("*{by}* took {who} off hold."),
                            "remove" => format!("*{by}* removed {who} from the call."),
                            "add" => format!("*{by}* is calling {who} into the call."),
                            "record_start" => format!("*{by}* started recording the call."),
                            "record_stop" => format!("*{by}* stopped recording the call."),
                            other => format!("*{by}*: {other} {who}."),
                        }
                    },
                ),
                FactKind::AfterHours { action } => (
                    ":crescent_moon: Call after hours",
                    format!(
                        "*{from}* called while the line is closed: {}.",
                        match *action {
                            "voicemail" => "asked to leave a voicemail",
                            "forward" => "forwarded to the after-hours numbers",
                            "message" => "heard the after-hours message",
                            _ => "rejected",
                        }
                    ),
                ),
                // Blocked callers are logged and counted, not posted.
                FactKind::Ended { .. }
                | FactKind::ConversationRecorded { .. }
                | FactKind::ConferenceRecorded { .. }
                | FactKind::Settled { .. }
                | FactKind::Refused { .. }
                | FactKind::TurnedAway { .. } => return None,
            };
            let line = match style.line_names.get(&fact.line) {
                Some(name) => format!("{} ({})", escape(name), escape(fact.to.as_str())),
                None => format!("Line {}", escape(fact.to.as_str())),
            };
            let context = format!("{line} · Call `{}` · {}", escape(sid.as_str()), when(*at));
            (title.to_owned(), body, context)
        }
        Record::AgentCall {
            call_id,
            at,
            agent,
            to,
            kind,
        } => {
            let agent = escape(agent);
            let to = escape(&privacy.party(to.as_str()));
            let (title, body) = match kind {
                AgentCallKind::Started => (
                    ":outbox_tray: Outbound call",
                    format!("*{agent}* is calling *{to}*."),
                ),
                AgentCallKind::Parked => (
                    ":warning: Agent's calls are parked",
                    format!(
                        "*{agent}*'s outgoing calls arrive parked: call parking is enabled on \
                         their SIP connection, so their calls wait in ringback for a command that \
                         never comes. Disable call parking on the connection."
                    ),
                ),
                AgentCallKind::Answered { after_secs } => (
                    ":white_check_mark: Outbound call answered",
                    format!("*{to}* answered *{agent}* after {}.", duration(*after_secs)),
                ),
                AgentCallKind::Finished {
                    talk_secs: Some(talk),
                    ..
                } => (
                    ":telephone_receiver: Outbound call finished",
                    format!("*{agent}* talked with *{to}* for {}.", duration(*talk)),
                ),
                AgentCallKind::Finished {
                    talk_secs: None,
                    cause,
                } => (
                    ":telephone_receiver: Outbound call finished",
                    match cause {
                        Some(c) => format!(
                            "*{agent}*'s call to *{to}* ended unanswered ({}).",
                            escape(&c.replace('_', " "))
                        ),
                        None => format!("*{agent}*'s call to *{to}* ended unanswered."),
                    },
                ),
            };
            let context = format!("Agent's own call · `{}` · {}", escape(call_id), when(*at));
            (title.to_owned(), body, context)
        }
        Record::Job { at, kind } => {
            let (title, body) = match kind {
                JobNotice::BalanceChecked { .. } => return None,
                JobNotice::BalanceLow {
                    available,
                    threshold,
                    currency,
                    reminder,
                } => (
                    if *reminder {
                        ":money_with_wings: Balance still low"
                    } else {
                        ":money_with_wings: Low balance"
                    },
                    format!(
                        "Available credit is *{available} {c}*, below the alert threshold of \
                         {threshold} {c}. Top up the account so calls keep flowing.",
                        c = escape(currency)
                    ),
                ),
                JobNotice::BalanceRecovered {
                    available,
                    threshold,
                    currency,
                } => (
                    ":moneybag: Balance recovered",
                    format!(
                        "Available credit is back to *{available} {c}* (alert threshold {threshold} {c}).",
                        c = escape(currency)
                    ),
                ),
                JobNotice::AgentsChanged { added, removed } => {
                    let list = |names: &[String]| {
                        names.iter().map(|n| escape(n)).collect::<Vec<_>>().join(", ")
                    };
                    let mut lines = Vec::new();
                    if !added.is_empty() {
                        lines.push(format!("*Added:* {}", list(added)));
                    }
                    if !removed.is_empty() {
                        lines.push(format!("*Removed:* {}", list(removed)));
                    }
                    (":busts_in_silhouette: Agent list changed", lines.join("\n"))
                }
                JobNotice::AgentsUnreachable { agents } => (
                    ":no_bell: Agents cannot receive calls",
                    agents
                        .iter()
                        .map(|(name, why)| format!("*{}* cannot receive calls: {}.", escape(name), escape(why)))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                JobNotice::JobFailing {
                    job,
                    failures,
                    error,
                } => (
                    ":rotating_light: Job failing",
                    format!(
                        "The *{job}* job failed {failures} times in a row. Last error: {}",
                        escape(&cut(error, 500))
                    ),
                ),
            };
            (
                title.to_owned(),
                body,
                format!("Switchboard · {}", when(*at)),
            )
        }
        Record::Line {
            at,
            name,
            open,
            until,
            by,
            ..
        } => {
            let (title, state) = match open {
                true => (":unlock: Line opened", "opened"),
                false => (":lock: Line closed", "closed"),
            };
            let until = match until {
                Some(t) => format!(" until {}", when(*t)),
                None if *open => String::new(),
                None => " until it is reopened".to_owned(),
            };
            (
                title.to_owned(),
                format!("*{}* {state} by {}{until}.", escape(name), escape(by)),
                format!("Switchboard · {}", when(*at)),
            )
        }
        Record::Leg { .. } => return None,
        Record::Recording {
            at,
            call,
            line,
            from,
            kind,
            fate,
        } => {
            let from = escape(&privacy.party(from.as_str()));
            let (title, body) = match fate {
                RecordingFate::Archived {
                    link: Some(link),
                    link_expires,
                    ..
                } => (
                    format!(":floppy_disk: {} saved", capitalised(kind)),
                    format!(
                        "*{from}*'s {kind} is archived: <{}|listen to our copy>{}.",
                        escape(link),
                        link_expires.map_or_else(String::new, |t| format!(
                            " (this link works until {})",
                            when(t)
                        ))
                    ),
                ),
                RecordingFate::Archived { id, .. } => (
                    format!(":floppy_disk: {} saved", capitalised(kind)),
                    format!(
                        "*{from}*'s {kind} is archived as `{}` (GET /recordings/{{id}} with the admin token).",
                        escape(id)
                    ),
                ),
                RecordingFate::Failed {
                    attempts,
                    reason,
                    provider_url,
                    ..
                } => (
                    format!(":warning: {} not archived", capitalised(kind)),
                    format!(
                        "{mention}*{from}*'s {kind} could not be downloaded after {attempts} \
                         attempts ({}). The provider's copy is the only one and its link expires \
                         soon: <{}|download it now>.",
                        escape(reason),
                        escape(provider_url)
                    ),
                ),
                RecordingFate::Deleted { .. } => return None,
            };
            let line = match style.line_names.get(line) {
                Some(name) => escape(name),
                None => format!("Line {}", escape(line.as_str())),
            };
            let context = format!("{line} · Call `{}` · {}", escape(call.as_str()), when(*at));
            (title, body, context)
        }
        Record::Away {
            at,
            agent,
            away,
            by,
        } => {
            let (title, state) = match away {
                true => (
                    ":zzz: Agent away",
                    "is away: not rung until available again",
                ),
                false => (":raising_hand: Agent available", "is available: rung again"),
            };
            (
                title.to_owned(),
                format!("*{}* {state} (set by {}).", escape(agent), escape(by)),
                format!("Switchboard · {}", when(*at)),
            )
        }
    })
}

/// `voicemail` → `Voicemail`.
fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Fact;
    use crate::domain::{CallSid, LineId, Party};

    #[test]
    fn limits_and_escaping_hold_for_hostile_input() {
        let from = format!("<!channel> & {}", "x".repeat(5000));
        let n = Record::Call {
            sid: CallSid::parse("CA<1>").expect("sid"),
            at: 0,
            fact: Fact {
                from: Party::parse(&from[..200]).expect("party"),
                to: Party::parse("+18005550100").expect("party"),
                line: LineId::main(),
                kind: FactKind::Ringing { agents: 1 },
            },
        };
        let m = message(&n, &Privacy::default(), &Style::default()).expect("a message");
        let body = m["blocks"][1]["text"]["text"].as_str().expect("body");
        assert!(body.starts_with("*&lt;!channel&gt; &amp; xxx"), "{body}");
        assert!(!body.contains("<!channel>"));
        let ctx = m["blocks"][2]["elements"][0]["text"].as_str().expect("ctx");
        assert!(ctx.contains("`CA&lt;1&gt;`"), "{ctx}");
        assert!(ctx.contains("<!date^0^{date_short_pretty} {time_secs}|1970-01-01 00:00:00 UTC>"));
        assert!(m["text"].as_str().expect("text").chars().count() <= MAX_SECTION);
    }

    #[test]
    fn long_texts_are_cut_to_the_limits() {
        let n = Record::Job {
            at: 0,
            kind: JobNotice::AgentsChanged {
                added: (0..2000).map(|i| format!("Agent number {i}")).collect(),
                removed: vec![],
            },
        };
        let m = message(&n, &Privacy::default(), &Style::default()).expect("a message");
        let body = m["blocks"][1]["text"]["text"].as_str().expect("body");
        assert_eq!(body.chars().count(), MAX_SECTION);
        assert!(body.ends_with('…'));
        assert_eq!(
            cut(&"h".repeat(200), MAX_HEADER).chars().count(),
            MAX_HEADER
        );
        assert_eq!(cut("short", MAX_HEADER), "short");
    }

    #[test]
    fn a_configured_line_is_named_in_the_context() {
        let fact = |line: &str| Record::Call {
            sid: CallSid::parse("CA1").expect("sid"),
            at: 0,
            fact: Fact {
                from: Party::parse("+12025550142").expect("party"),
                to: Party::parse("+18005550100").expect("party"),
                line: LineId::new(line),
                kind: FactKind::Ringing { agents: 2 },
            },
        };
        let style = Style {
            line_names: [(LineId::new("support"), "Support <line>".to_owned())].into(),
            ..Style::default()
        };
        let context = |record: &Record| {
            let m = message(record, &Privacy::default(), &style).expect("a message");
            m["blocks"][2]["elements"][0]["text"]
                .as_str()
                .expect("ctx")
                .to_owned()
        };
        assert!(context(&fact("support")).starts_with("Support &lt;line&gt; (+18005550100) · Call"));
        assert!(context(&fact("main")).starts_with("Line +18005550100 · Call"));
    }

    #[test]
    fn unreachable_agents_are_named_with_the_reason() {
        let n = Record::Job {
            at: 0,
            kind: JobNotice::AgentsUnreachable {
                agents: vec![("Ada <x>".into(), "SIP URI calling is disabled".into())],
            },
        };
        let m = message(&n, &Privacy::default(), &Style::default()).expect("a message");
        let body = m["blocks"][1]["text"]["text"].as_str().expect("body");
        assert_eq!(
            body,
            "*Ada &lt;x&gt;* cannot receive calls: SIP URI calling is disabled."
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(60), "1 min");
        assert_eq!(duration(185), "3 min 5 s");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(duration(3725), "1 h 2 min");
    }
}
