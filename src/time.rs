//! Time, injected: the system clock in production, a hand-moved one in tests, so durations and
//! timestamps in messages are exact and testable. A leaf: it depends on nothing in the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the only notion of time the call logic has, always passed in.
pub type Millis = u64;

/// Whole seconds between two instants (0 when `later` is not later).
pub fn secs_between(earlier: Millis, later: Millis) -> u64 {
    later.saturating_sub(earlier) / 1000
}

/// Which way a duration counts from now in [`instant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    Future,
    Past,
}

/// Why a text is not an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInstant {
    BeforeEpoch,
    /// Neither an RFC 3339 instant nor a positive duration.
    Unreadable,
}

/// `text` as an instant: RFC 3339 (`2026-11-23T17:00:00-05:00`), or a positive duration (`2h`,
/// `1h 30m`) from `now`, `toward` the future or the past.
pub fn instant(text: &str, now: Millis, toward: Toward) -> Result<Millis, BadInstant> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return u64::try_from(ts.as_millisecond()).map_err(|_| BadInstant::BeforeEpoch);
    }
    match text.parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_positive() => {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            Ok(match toward {
                Toward::Future => now.saturating_add(ms),
                Toward::Past => now.saturating_sub(ms),
            })
        }
        _ => Err(BadInstant::Unreadable),
    }
}

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Millis;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn at(ms: Millis) -> ManualClock {
        ManualClock(AtomicU64::new(ms))
    }

    pub fn advance_secs(&self, secs: u64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}
