//! The agents Switchboard rings. Replaced whole, never edited in place: a call that is ringing
//! keeps the list it rang (its [`Targets`]), and a new call sees the new list.

use std::sync::{Arc, RwLock};

use crate::call::Targets;
use crate::domain::Agent;

pub struct Roster {
    agents: RwLock<Targets>,
}

impl Roster {
    pub fn new(agents: Vec<Agent>) -> Roster {
        Roster {
            agents: RwLock::new(Arc::from(agents)),
        }
    }

    /// The agents that would ring if a round started now.
    pub fn available(&self) -> Targets {
        match self.agents.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked mid-swap; the Arc inside is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the whole list at once.
    pub fn replace(&self, agents: Vec<Agent>) {
        let new: Targets = Arc::from(agents);
        match self.agents.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}
