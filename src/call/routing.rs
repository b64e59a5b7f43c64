//! Who rings, and in what order: the ring strategies, who is free (busy, wrapping up, away), and
//! whether an agent must press 1 first. Pure functions of the agents, what each has been doing
//! ([`Presence`]) and the time; the call service only gathers the presence and applies the
//! [`Mark`]s the transition returns.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{Agent, CallSid, Endpoint, Screen};
use crate::time::Millis;

/// The order a line's agents are rung in, within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Everyone at once (in waves of what one `<Dial>` may hold, starting at a place that rotates
    /// from call to call).
    #[default]
    Ringall,
    /// One at a time, in the configured order, each for the round's ring time.
    Sequential,
    /// One at a time, starting after the agent who answered last.
    RoundRobin,
    /// One at a time, the agent whose last call ended earliest first (never called: first).
    LongestIdle,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "ringall" => Strategy::Ringall,
            "sequential" => Strategy::Sequential,
            "round_robin" => Strategy::RoundRobin,
            "longest_idle" => Strategy::LongestIdle,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Strategy::Ringall => "ringall",
            Strategy::Sequential => "sequential",
            Strategy::RoundRobin => "round_robin",
            Strategy::LongestIdle => "longest_idle",
        }
    }

    /// Whether each agent is rung alone (a `<Dial>` of one).
    pub fn one_at_a_time(self) -> bool {
        self != Strategy::Ringall
    }
}

/// How one line rings its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    pub screen: Screen,
    pub strategy: Strategy,
    /// Seconds after a call before its agent is rung again (an agent may set their own).
    pub wrap_up_secs: u32,
}

impl Default for Routing {
    /// Phone numbers screened, everyone at once, 15 s of wrap-up.
    fn default() -> Routing {
        Routing {
            screen: Screen::Numbers,
            strategy: Strategy::Ringall,
            wrap_up_secs: 15,
        }
    }
}

impl Routing {
    /// Whether a leg to `agent` asks them to press 1 first: their own rule, else the line's.
    pub fn screens(&self, agent: &Agent) -> bool {
        screens(self.screen, agent)
    }

    /// Whether a leg to `to`, which is no known agent, is screened: by the line's rule, taking
    /// `to` for a SIP phone when it is a SIP address.
    pub fn screens_unknown(&self, to: &str) -> bool {
        let endpoint = Endpoint::sip(to.trim()).unwrap_or(Endpoint::Number(to.into()));
        self.screen.applies(&endpoint)
    }

    /// Wrap-up of `agent`, in seconds: their own, else the line's.
    pub fn wrap_up_of(&self, agent: &Agent) -> u32 {
        agent.wrap_up_secs.unwrap_or(self.wrap_up_secs)
    }
}

/// Whether a leg to `agent` asks them to press 1 first, on a line whose rule is `line`.
pub fn screens(line: Screen, agent: &Agent) -> bool {
    agent.screen.unwrap_or(line).applies(&agent.endpoint)
}

/// What one agent has been doing, as every replica sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The call they are talking on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_call: Option<CallSid>,
    /// Not rung before this instant: the end of their call's longest possible talk while on
    /// it (so a lost final callback frees them anyway), then the end of wrap-up.
    #[serde(default)]
    pub busy_until: Millis,
    /// Set away by hand: never rung until set available.
    #[serde(default)]
    pub away: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_answered: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ended: Option<Millis>,
}

impl Presence {
    /// Whether they may be rung at `now`.
    pub fn free(&self, now: Millis) -> bool {
        !self.away && now >= self.busy_until
    }
}

/// Every agent's presence, by agent id (an agent never seen is free).
pub type Presences = Arc<HashMap<Box<str>, Presence>>;

/// A change to one agent's presence, decided by the transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// `agent` took call `call` at `at`; busy until `until` unless the call ends first.
    Answered {
        agent: Box<str>,
        call: CallSid,
        at: Millis,
        until: Millis,
    },
    /// `agent` is on a call of their own, `call`, from `at`; busy until `until` unless it ends
    /// first. Unlike `Answered`, it is no turn taken at the line (`round_robin` ignores it).
    Busy {
        agent: Box<str>,
        call: CallSid,
        at: Millis,
        until: Millis,
    },
    /// `agent`'s conversation on `call` ended at `at`: free after `wrap_up_secs`.
    Ended {
        agent: Box<str>,
        call: CallSid,
        at: Millis,
        wrap_up_secs: u32,
    },
    /// Set away (or available again) by hand.
    Away { agent: Box<str>, away: bool },
}

impl Mark {
    pub fn agent(&self) -> &str {
        match self {
            Mark::Answered { agent, .. }
            | Mark::Busy { agent, .. }
            | Mark::Ended { agent, .. }
            | Mark::Away { agent, .. } => agent,
        }
    }

    /// `presence` after this mark. Idempotent, and order-tolerant: a late `Answered` after its
    /// own `Ended` does not make the agent busy again.
    pub fn apply(&self, mut p: Presence) -> Presence {
        match self {
            Mark::Answered {
                call, at, until, ..
            }
            | Mark::Busy {
                call, at, until, ..
            } => {
                let ended_after = p.last_ended.is_some_and(|e| e >= *at);
                if !ended_after {
                    p.on_call = Some(call.clone());
                    p.busy_until = p.busy_until.max(*until);
                }
                if let Mark::Answered { .. } = self {
                    p.last_answered = Some(p.last_answered.map_or(*at, |a| a.max(*at)));
                }
            }
            Mark::Ended {
                call,
                at,
                wrap_up_secs,
                ..
            } => {
                let free_at = at.saturating_add(u64::from(*wrap_up_secs) * 1000);
                match &p.on_call {
                    Some(c) if c == call => {
                        p.on_call = None;
                        p.busy_until = free_at;
                    }
                    // Busy on another call: that one decides.
                    Some(_) => {}
                    None => p.busy_until = p.busy_until.max(free_at),
                }
                p.last_ended = Some(p.last_ended.map_or(*at, |e| e.max(*at)));
            }
            Mark::Away { away, .. } => p.away = *away,
        }
        p
    }
}

/// The agents of `agents` who may be rung at `now`, in their order.
pub fn free(agents: &[Agent], presences: &Presences, now: Millis) -> Vec<Agent> {
    agents
        .iter()
        .filter(|a| presences.get(&a.id).is_none_or(|p| p.free(now)))
        .cloned()
        .collect()
}

/// `agents` in the order `strategy` rings them. `turn` picks where a ring-all starts, so that the
/// same agents are not always in the first wave (the call service passes a number derived from
/// the call).
pub fn order(strategy: Strategy, agents: &[Agent], presences: &Presences, turn: u64) -> Vec<Agent> {
    let mut out = agents.to_vec();
    if out.is_empty() {
        return out;
    }
    match strategy {
        Strategy::Sequential => {}
        Strategy::Ringall => {
            let start = usize::try_from(turn % out.len() as u64).unwrap_or(0);
            out.rotate_left(start);
        }
        Strategy::RoundRobin => {
            // After the agent who answered last (ties: the later in the list).
            let last = out
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    presences
                        .get(&a.id)
                        .and_then(|p| p.last_answered)
                        .map(|t| (t, i))
                })
                .max();
            if let Some((_, i)) = last {
                out.rotate_left((i + 1) % agents.len());
            }
        }
        Strategy::LongestIdle => {
            // Stable: ties keep the configured order.
            out.sort_by_key(|a| presences.get(&a.id).and_then(|p| p.last_ended));
        }
    }
    out
}

/// A number from a CallSid, the same on every replica: where a ring-all starts for that call.
pub fn turn_of(sid: &CallSid) -> u64 {
    // FNV-1a: small, stable across builds and platforms (std's hasher is not).
    sid.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> Agent {
        let e = Endpoint::number(&format!("+1202555{:04}", id.len() * 7 + 100)).expect("number");
        Agent::new(id, e).expect("agent").with_id(id)
    }

    fn team() -> Vec<Agent> {
        ["ada", "bob", "cy", "dee"]
            .iter()
            .map(|n| agent(n))
            .collect()
    }

    fn ids(agents: &[Agent]) -> Vec<&str> {
        agents.iter().map(|a| &*a.id).collect()
    }

    fn presences(entries: &[(&str, Presence)]) -> Presences {
        Arc::new(
            entries
                .iter()
                .map(|(id, p)| (Box::from(*id), p.clone()))
                .collect(),
        )
    }

    #[test]
    fn sequential_keeps_the_configured_order() {
        let p = presences(&[]);
        for turn in [0, 1, 7] {
            let got = order(Strategy::Sequential, &team(), &p, turn);
            assert_eq!(ids(&got), ["ada", "bob", "cy", "dee"]);
        }
    }

    #[test]
    fn ringall_starts_where_the_turn_says_and_rings_everyone() {
        let p = presences(&[]);
        assert_eq!(
            ids(&order(Strategy::Ringall, &team(), &p, 0)),
            ["ada", "bob", "cy", "dee"]
        );
        assert_eq!(
            ids(&order(Strategy::Ringall, &team(), &p, 6)),
            ["cy", "dee", "ada", "bob"]
        );
        let starts: std::collections::HashSet<String> = (0..40u64)
            .map(|i| {
                let sid = CallSid::parse(&format!("CA{i:032}")).expect("sid");
                order(Strategy::Ringall, &team(), &p, turn_of(&sid))[0]
                    .id
                    .to_string()
            })
            .collect();
        assert_eq!(starts.len(), 4, "every agent starts some call: {starts:?}");
    }

    #[test]
    fn round_robin_starts_after_the_last_agent_who_answered() {
        let answered = |t| Presence {
            last_answered: Some(t),
            ..Presence::default()
        };
        let none = presences(&[]);
        assert_eq!(
            ids(&order(Strategy::RoundRobin, &team(), &none, 3)),
            ["ada", "bob", "cy", "dee"]
        );
        let p = presences(&[("ada", answered(10)), ("cy", answered(20))]);
        assert_eq!(
            ids(&order(Strategy::RoundRobin, &team(), &p, 3)),
            ["dee", "ada", "bob", "cy"]
        );
        let p = presences(&[("dee", answered(30)), ("cy", answered(20))]);
        assert_eq!(
            ids(&order(Strategy::RoundRobin, &team(), &p, 0)),
            ["ada", "bob", "cy", "dee"]
        );
    }

    #[test]
    fn longest_idle_rings_the_earliest_ended_first_and_never_called_before_anyone() {
        let ended = |t| Presence {
            last_ended: Some(t),
            ..Presence::default()
        };
        let p = presences(&[("ada", ended(50)), ("bob", ended(10)), ("dee", ended(30))]);
        assert_eq!(
            ids(&order(Strategy::LongestIdle, &team(), &p, 9)),
            ["cy", "bob", "dee", "ada"]
        );
        // Ties keep the configured order.
        let p = presences(&[("ada", ended(10)), ("bob", ended(10))]);
        assert_eq!(
            ids(&order(Strategy::LongestIdle, &team(), &p, 0)),
            ["cy", "dee", "ada", "bob"]
        );
    }

    #[test]
    fn busy_wrapping_up_and_away_agents_are_not_free() {
        let sid = CallSid::parse("CA1").expect("sid");
        let answered = Mark::Answered {
            agent: "bob".into(),
            call: sid.clone(),
            at: 1_000,
            until: 1_000 + 14_400_000,
        };
        let bob = answered.apply(Presence::default());
        let p = presences(&[("bob", bob.clone())]);
        assert_eq!(ids(&free(&team(), &p, 5_000)), ["ada", "cy", "dee"]);
        // The call ends at 60 s; 15 s of wrap-up.
        let ended = Mark::Ended {
            agent: "bob".into(),
            call: sid.clone(),
            at: 60_000,
            wrap_up_secs: 15,
        };
        let bob = ended.apply(bob);
        let p = presences(&[("bob", bob.clone())]);
        assert_eq!(ids(&free(&team(), &p, 74_999)), ["ada", "cy", "dee"]);
        assert_eq!(ids(&free(&team(), &p, 75_000)), ["ada", "bob", "cy", "dee"]);
        // Duplicates and a late Answered change nothing.
        assert_eq!(ended.apply(bob.clone()), bob);
        assert_eq!(answered.apply(bob.clone()).busy_until, bob.busy_until);
        let away = Mark::Away {
            agent: "cy".into(),
            away: true,
        }
        .apply(Presence::default());
        let p = presences(&[("cy", away)]);
        assert_eq!(ids(&free(&team(), &p, u64::MAX)), ["ada", "bob", "dee"]);
    }

    #[test]
    fn a_lost_final_callback_frees_the_agent_at_the_cap() {
        let bob = Mark::Answered {
            agent: "bob".into(),
            call: CallSid::parse("CA1").expect("sid"),
            at: 0,
            until: 100_000,
        }
        .apply(Presence::default());
        assert!(!bob.free(99_999));
        assert!(bob.free(100_000));
    }

    #[test]
    fn an_own_call_makes_busy_without_taking_a_turn() {
        let call = CallSid::parse("v3:out-1").expect("sid");
        let busy = Mark::Busy {
            agent: "bob".into(),
            call: call.clone(),
            at: 5_000,
            until: 100_000,
        };
        let bob = busy.apply(Presence::default());
        assert!(!bob.free(50_000));
        assert_eq!(bob.last_answered, None, "round_robin does not count it");
        let ended = Mark::Ended {
            agent: "bob".into(),
            call,
            at: 60_000,
            wrap_up_secs: 10,
        };
        let bob = ended.apply(bob);
        assert!(!bob.free(69_999) && bob.free(70_000));
        assert_eq!(bob.last_ended, Some(60_000), "longest_idle counts it");
        assert_eq!(busy.apply(bob.clone()), bob, "a late start after its end");
    }

    #[test]
    fn screening_follows_the_agent_then_the_line() {
        let sip = Agent::new("s", Endpoint::sip("sip:s@x.example").expect("sip")).expect("a");
        let num = agent("n");
        let line = Routing::default();
        assert!(line.screens(&num) && !line.screens(&sip));
        let always = Routing {
            screen: Screen::Always,
            ..line
        };
        assert!(always.screens(&sip));
        let mut never_me = num.clone();
        never_me.screen = Some(Screen::Never);
        assert!(!always.screens(&never_me));
        assert!(line.screens_unknown("+12025550100"));
        assert!(!line.screens_unknown("sip:who@x.example"));
    }
}
