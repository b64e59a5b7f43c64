//! The agents Switchboard rings. The list is replaced whole, never edited in place, and the
//! available subset is computed once per change: a call reads it with one `Arc` clone, a ringing
//! call keeps the list it rang (its [`Targets`]), and a new call sees the new list.
//!
//! An agent on an outbound call of their own is *busy* and is left out of new rounds.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::call::Targets;
use crate::domain::Agent;

#[derive(Default)]
struct Inner {
    all: Targets,
    /// Outbound calls in progress: call id → the agent's connection id.
    busy: HashMap<Box<str>, Box<str>>,
    /// `all` without busy agents; recomputed on every change.
    available: Targets,
}

impl Inner {
    fn recompute(&mut self) {
        let busy: std::collections::HashSet<&str> = self.busy.values().map(|c| &**c).collect();
        self.available = if busy.is_empty() {
            self.all.clone()
        } else {
            self.all
                .iter()
                .filter(|a| a.connection_id.as_deref().is_none_or(|c| !busy.contains(c)))
                .cloned()
                .collect::<Vec<_>>()
                .into()
        };
    }
}

#[derive(Default)]
pub struct Roster {
    inner: RwLock<Inner>,
}

impl Roster {
    pub fn new(agents: Vec<Agent>) -> Roster {
        let roster = Roster::default();
        roster.replace(agents);
        roster
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

    /// The agents that would ring if a round started now.
    pub fn available(&self) -> Targets {
        self.read(|i| i.available.clone())
    }

    /// Every agent, busy or not.
    pub fn all(&self) -> Targets {
        self.read(|i| i.all.clone())
    }

    /// Replaces the whole list at once.
    pub fn replace(&self, agents: Vec<Agent>) {
        self.write(|i| {
            i.all = agents.into();
            i.recompute();
        });
    }

    /// The agent whose SIP connection has this id.
    pub fn by_connection(&self, connection_id: &str) -> Option<Agent> {
        self.read(|i| {
            i.all
                .iter()
                .find(|a| a.connection_id.as_deref() == Some(connection_id))
                .cloned()
        })
    }

    /// Marks the agent on `connection_id` busy with outbound call `call_id`.
    pub fn set_busy(&self, call_id: &str, connection_id: &str) {
        self.write(|i| {
            i.busy.insert(call_id.into(), connection_id.into());
            i.recompute();
        });
    }

    /// Outbound call `call_id` ended; its agent is free again unless on another call.
    pub fn clear_busy(&self, call_id: &str) {
        self.write(|i| {
            if i.busy.remove(call_id).is_some() {
                i.recompute();
            }
        });
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
        let roster = Roster::new(vec![agent("ada", "c1"), agent("bob", "c2")]);
        let before = roster.available();
        roster.set_busy("call-1", "c1");
        roster.set_busy("call-2", "c1");
        assert_eq!(roster.available().len(), 1);
        assert_eq!(&*roster.available()[0].name, "bob");
        roster.clear_busy("call-1");
        assert_eq!(roster.available().len(), 1);
        roster.clear_busy("call-2");
        assert_eq!(roster.available().len(), 2);
        // A list handed out earlier is untouched by later changes.
        assert_eq!(before.len(), 2);
    }
}
