//! The agents, in one place: who answers each line (the roster), who is busy on a call of their
//! own, where the list comes from, and how replicas share it.
//!
//! - this file: [`Agents`], the roster keyed by line, with busy marking
//! - [`own_calls`]: agents' own outbound calls (Call Control webhooks), which make them busy
//! - [`presence`]: who is on a call, wrapping up or away, shared by replicas
//! - [`source`]: the list from the Telnyx API (credential connections)
//! - [`shared`]: the list shared between replicas through Redis
//!
//! Each line's list is replaced whole, never edited in place, and its available subset is
//! computed once per change: a call reads it with one `Arc` clone, a ringing call keeps the list
//! it rang (its [`Targets`]), and a new call sees the new list.

pub mod cli;
pub mod own_calls;
pub mod presence;
pub mod shared;
pub mod source;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::call::Targets;
use crate::domain::{Agent, LineId};

#[derive(Default, Clone)]
struct Line {
    all: Arc<[Agent]>,
    /// `all` without busy agents; recomputed on every change.
    available: Option<Targets>,
}

#[derive(Default)]
struct Inner {
    /// Every agent, whatever their line.
    everyone: Arc<[Agent]>,
    /// Who answers each line: agent ids, or `None` for everyone.
    members: Vec<(LineId, Option<Vec<Box<str>>>)>,
    lines: HashMap<LineId, Line>,
    /// Agents' own calls in progress: call id → the agent's connection id. An agent busy on one
    /// line is busy on every line.
    busy: HashMap<Box<str>, Box<str>>,
}

impl Inner {
    /// Each line's list from everyone, in the order of `everyone`.
    fn distribute(&mut self) {
        for (line, members) in &self.members {
            let all: Arc<[Agent]> = match members {
                None => self.everyone.clone(),
                Some(ids) => self
                    .everyone
                    .iter()
                    .filter(|a| ids.iter().any(|id| **id == *a.id))
                    .cloned()
                    .collect::<Vec<_>>()
                    .into(),
            };
            self.lines.entry(line.clone()).or_default().all = all;
        }
        self.recompute();
    }

    fn recompute(&mut self) {
        let busy: HashSet<&str> = self.busy.values().map(|c| &**c).collect();
        for line in self.lines.values_mut() {
            let free: Arc<[Agent]> = if busy.is_empty() {
                line.all.clone()
            } else {
                line.all
                    .iter()
                    .filter(|a| is_free(a, |c| busy.contains(c)))
                    .cloned()
                    .collect::<Vec<_>>()
                    .into()
            };
            line.available = Targets::new(free);
        }
    }
}

/// Whether `agent` is free: not reached through a connection `busy` says is on a call.
fn is_free(agent: &Agent, busy: impl Fn(&str) -> bool) -> bool {
    agent.connection_id.as_deref().is_none_or(|c| !busy(c))
}

/// The roster of every line, and who is busy. Shared by the call service (who to ring), the
/// Call Control route (busy marking), the jobs (refresh) and the replica sync.
#[derive(Default)]
pub struct Agents {
    /// Behind one lock: a change (a refresh, a busy mark) recomputes every line's available
    /// list at once, and readers never see a list without its availability.
    inner: RwLock<Inner>,
}

impl Agents {
    /// `agents` on `line`, alone.
    pub fn new(line: LineId, agents: Vec<Agent>) -> Agents {
        Agents::for_lines(vec![(line, None)], agents)
    }

    /// `agents`, shared out between `lines`: each names its agents' ids (`None`: everyone).
    pub fn for_lines(lines: Vec<(LineId, Option<Vec<String>>)>, agents: Vec<Agent>) -> Agents {
        let roster = Agents::default();
        roster.write(|i| {
            i.members = lines
                .into_iter()
                .map(|(line, ids)| {
                    (
                        line,
                        ids.map(|ids| ids.iter().map(|id| id.as_str().into()).collect()),
                    )
                })
                .collect();
        });
        roster.replace_all(agents);
        roster
    }

    /// Every agent, whatever their line.
    pub fn everyone(&self) -> Arc<[Agent]> {
        self.read(|i| i.everyone.clone())
    }

    /// Replaces every agent at once; each line gets its own from them.
    pub fn replace_all(&self, agents: Vec<Agent>) {
        self.write(|i| {
            i.everyone = agents.into();
            i.distribute();
        });
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        match self.inner.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        match self.inner.write() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The agents of `line` a round starting now would ring (`None`: nobody is free).
    pub fn available(&self, line: &LineId) -> Option<Targets> {
        self.read(|i| i.lines.get(line).and_then(|l| l.available.clone()))
    }

    /// Every agent of `line`, busy or not.
    pub fn all(&self, line: &LineId) -> Arc<[Agent]> {
        self.read(|i| i.lines.get(line).map(|l| l.all.clone()).unwrap_or_default())
    }

    /// The agent whose SIP connection has this id, on any line.
    /// The agent named `id` by lines, whatever their line.
    pub fn by_id(&self, id: &str) -> Option<Agent> {
        self.everyone().iter().find(|a| &*a.id == id).cloned()
    }

    pub fn by_connection(&self, connection_id: &str) -> Option<Agent> {
        self.read(|i| {
            i.everyone
                .iter()
                .find(|a| a.connection_id.as_deref() == Some(connection_id))
                .cloned()
        })
    }

    /// Marks the agent on `connection_id` busy with their own call `call_id`.
    pub fn set_busy(&self, call_id: &str, connection_id: &str) {
        self.write(|i| {
            i.busy.insert(call_id.into(), connection_id.into());
            i.recompute();
        });
    }

    /// The agent's own call `call_id` ended; they are free again unless on another call.
    pub fn clear_busy(&self, call_id: &str) {
        self.write(|i| {
            if i.busy.remove(call_id).is_some() {
                i.recompute();
            }
        });
    }

    /// (known, available): every agent, and those not busy.
    fn counts(&self) -> (usize, usize) {
        self.read(|i| {
            let busy: HashSet<&str> = i.busy.values().map(|c| &**c).collect();
            let free = i
                .everyone
                .iter()
                .filter(|a| is_free(a, |c| busy.contains(c)))
                .count();
            (i.everyone.len(), free)
        })
    }

    /// Registers `agents_known` and `agents_available`, read at scrape time.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(AgentGauges(self.clone())));
    }
}

struct AgentGauges(Arc<Agents>);

impl std::fmt::Debug for AgentGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentGauges")
    }
}

impl Collector for AgentGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let (known, available) = self.0.counts();
        for (name, help, value) in [
            ("agents_known", "Agents in the roster", known),
            (
                "agents_available",
                "Agents not busy on a call of their own",
                available,
            ),
        ] {
            let g = ConstGauge::new(value as i64);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Endpoint;

    fn agent(name: &str, conn: &str) -> Agent {
        let mut a = Agent::new(
            name,
            Endpoint::sip(&format!("sip:{name}@x.example")).expect("sip"),
        )
        .expect("agent");
        a.connection_id = Some(conn.into());
        a
    }

    #[test]
    fn busy_agents_are_not_available_until_every_call_of_theirs_ends() {
        let main = LineId::main();
        let agents = Agents::new(main.clone(), vec![agent("ada", "c1"), agent("bob", "c2")]);
        let before = agents.available(&main).expect("both");
        agents.set_busy("call-1", "c1");
        agents.set_busy("call-2", "c1");
        let free = agents.available(&main).expect("bob");
        assert_eq!((free.len(), &*free[0].name), (1, "bob"));
        agents.clear_busy("call-1");
        assert_eq!(agents.available(&main).map(|t| t.len()), Some(1));
        agents.clear_busy("call-2");
        assert_eq!(agents.available(&main).map(|t| t.len()), Some(2));
        // A list handed out earlier is untouched by later changes.
        assert_eq!(before.len(), 2);
        assert_eq!(agents.counts(), (2, 2));
    }

    #[test]
    fn each_line_rings_its_own_agents() {
        let (support, hotline) = (LineId::new("support"), LineId::new("hotline"));
        let lines = vec![
            (support.clone(), Some(vec!["ada".into(), "bob".into()])),
            (hotline.clone(), Some(vec!["bob".into()])),
        ];
        let agents = Agents::for_lines(lines, vec![agent("ada", "c1"), agent("bob", "c2")]);
        let names = |l: &LineId| {
            agents
                .all(l)
                .iter()
                .map(|a| a.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&support), ["ada", "bob"]);
        assert_eq!(names(&hotline), ["bob"]);
        // Busy on one line is busy on every line.
        agents.set_busy("call-1", "c2");
        assert_eq!(agents.available(&hotline), None);
        assert_eq!(agents.available(&support).map(|t| t.len()), Some(1));
        // A new list is shared out again.
        agents.replace_all(vec![agent("bob", "c2")]);
        assert_eq!(names(&support), ["bob"]);
        assert_eq!(agents.counts(), (1, 0));
    }

    #[test]
    fn nobody_free_is_none_and_unknown_lines_have_nobody() {
        let main = LineId::main();
        let agents = Agents::new(main.clone(), vec![agent("ada", "c1")]);
        agents.set_busy("call-1", "c1");
        assert_eq!(agents.available(&main), None);
        assert_eq!(agents.all(&main).len(), 1);
        assert!(agents.by_connection("c1").is_some());
        let other = Agents::new(main, vec![]);
        assert_eq!(other.counts(), (0, 0));
    }
}
