//! The transition's inputs besides the call and the event: the [`Policy`], built once from the
//! settings, and a [`Snapshot`] of the moment, gathered by the call service for each event.

use crate::domain::{LineId, Party};

use super::event::Event;
use super::state::Targets;

/// How calls are handled: decided by the operator, fixed while running.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How many times every agent is rung before voicemail.
    pub rounds: u8,
    /// Live calls held at most; a new call past it hears the `unavailable` prompt.
    pub max_active_calls: usize,
    /// The line every number belongs to (one line until lines are configured).
    pub line: LineId,
}

impl Default for Policy {
    /// The embedded configuration's policy: two rounds, 10,000 live calls, one line.
    fn default() -> Policy {
        Policy {
            rounds: 2,
            max_active_calls: 10_000,
            line: LineId::main(),
        }
    }
}

impl Policy {
    pub fn with_rounds(self, rounds: u8) -> Policy {
        Policy { rounds, ..self }
    }

    pub fn with_max_active_calls(self, max_active_calls: usize) -> Policy {
        Policy {
            max_active_calls,
            ..self
        }
    }

    /// The line a call to `to` is on.
    pub fn line_for(&self, _to: &Party) -> LineId {
        self.line.clone()
    }

    /// The line of a call the store does not hold yet, from the event that would create it.
    pub fn line_of(&self, event: &Event) -> LineId {
        match event {
            Event::Incoming { to, .. } | Event::DialEnded { to, .. } => self.line_for(to),
            _ => self.line.clone(),
        }
    }
}

/// What is true right now, for the call's line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// The agents a round starting now would ring (`None`: nobody is free).
    pub available: Option<Targets>,
    /// Live calls held, counted only for a new call (0 for every other event).
    pub live_calls: usize,
}

impl Snapshot {
    /// `available` would ring, nothing else to say.
    pub fn ringing(available: Option<Targets>) -> Snapshot {
        Snapshot {
            available,
            live_calls: 0,
        }
    }
}
