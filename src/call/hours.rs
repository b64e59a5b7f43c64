//! Whether a line is open right now, and why: its schedule, unless an operator said otherwise
//! (a manual override, set through the admin API). Pure: the time and the override are passed in.
//!
//! An override holds until its `until`, then the schedule decides again. Closing without a time
//! holds until the schedule next *opens* (so "closed for the afternoon" ends at tomorrow's
//! opening, not at today's closing); a line without a schedule stays closed until reopened.
//! Opening a line the schedule has open lifts any override; opening a line the schedule has
//! closed holds until the schedule's next change (FreePBX's "temporary override").

use serde::{Deserialize, Serialize};

use super::schedule::{Openness, Schedule};
use crate::time::Millis;

/// An operator's word on a line, shared by every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// Open (`true`) or closed, whatever the schedule says.
    pub open: bool,
    /// Until when; `None`: until changed by hand.
    pub until: Option<Millis>,
    /// When it was set.
    pub at: Millis,
    /// Who set it (`admin API`, or what the caller of the API said).
    pub by: String,
}

impl Override {
    /// Whether it still holds at `now`.
    pub fn holds(&self, now: Millis) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// Why a line is open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// No schedule: always open.
    AlwaysOpen,
    /// Within its opening hours.
    Hours,
    /// Outside its opening hours.
    OutsideHours,
    /// A closed day (a holiday).
    ClosedDay,
    /// An operator's override.
    Manual,
}

/// A line's state at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    pub open: bool,
    pub why: Why,
}

/// The state of a line with `schedule` (`None`: always open) and `manual` override at `now`.
/// Cheap: the call path asks it for every new call.
pub fn status(schedule: Option<&Schedule>, manual: Option<&Override>, now: Millis) -> Status {
    if let Some(o) = manual.filter(|o| o.holds(now)) {
        return Status {
            open: o.open,
            why: Why::Manual,
        };
    }
    let Some(schedule) = schedule else {
        return Status {
            open: true,
            why: Why::AlwaysOpen,
        };
    };
    let openness = schedule.at(now);
    Status {
        open: openness.is_open(),
        why: match openness {
            Openness::Open => Why::Hours,
            Openness::OutsideHours => Why::OutsideHours,
            Openness::ClosedDay => Why::ClosedDay,
        },
    }
}

/// When the state [`status`] gives changes next, if known: the override's end, or the
/// schedule's next change. Searches the schedule ahead, so it is for people (the admin API),
/// not for the call path.
pub fn until(
    schedule: Option<&Schedule>,
    manual: Option<&Override>,
    now: Millis,
) -> Option<Millis> {
    match manual.filter(|o| o.holds(now)) {
        Some(o) => o.until,
        None => schedule.and_then(|s| s.next_change(now)),
    }
}

/// An operator closes the line at `now`, until `until` or the schedule's next opening.
pub fn close(
    schedule: Option<&Schedule>,
    until: Option<Millis>,
    by: &str,
    now: Millis,
) -> Override {
    Override {
        open: false,
        until: until.or_else(|| schedule.and_then(|s| s.next_opening(now))),
        at: now,
        by: by.to_owned(),
    }
}

/// An operator opens the line at `now`: `None` (no override) when the schedule has it open and
/// no `until` is given; else open until `until` or the schedule's next change.
pub fn open(
    schedule: Option<&Schedule>,
    until: Option<Millis>,
    by: &str,
    now: Millis,
) -> Option<Override> {
    let scheduled_open = schedule.is_none_or(|s| s.at(now).is_open());
    if scheduled_open && until.is_none() {
        return None;
    }
    Some(Override {
        open: true,
        until: until.or_else(|| schedule.and_then(|s| s.next_change(now))),
        at: now,
        by: by.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::schedule::{minutes, Hours};

    /// Mon–Fri 09:00–17:00 UTC.
    fn office() -> Schedule {
        let hours = Hours {
            days: [true, true, true, true, true, false, false],
            from: minutes("09:00").expect("from"),
            to: minutes("17:00").expect("to"),
        };
        Schedule::new("UTC", vec![hours], vec![]).expect("schedule")
    }

    fn utc(instant: &str) -> Millis {
        let ts: jiff::Timestamp = instant.parse().expect("instant");
        u64::try_from(ts.as_millisecond()).expect("after 1970")
    }

    #[test]
    fn the_schedule_decides_without_an_override() {
        let s = office();
        let monday_noon = utc("2026-11-23T12:00:00Z");
        assert_eq!(
            status(Some(&s), None, monday_noon),
            Status {
                open: true,
                why: Why::Hours,
            }
        );
        assert_eq!(
            until(Some(&s), None, monday_noon),
            Some(utc("2026-11-23T17:00:00Z"))
        );
        let sunday = utc("2026-11-22T12:00:00Z");
        assert_eq!(status(Some(&s), None, sunday).why, Why::OutsideHours);
        assert_eq!(
            status(None, None, sunday),
            Status {
                open: true,
                why: Why::AlwaysOpen,
            }
        );
        assert_eq!(until(None, None, sunday), None);
    }

    #[test]
    fn closing_without_a_time_holds_until_the_next_opening_then_the_schedule_decides() {
        let s = office();
        let monday_noon = utc("2026-11-23T12:00:00Z");
        let o = close(Some(&s), None, "admin API", monday_noon);
        assert_eq!(o.until, Some(utc("2026-11-24T09:00:00Z")));
        assert!(!status(Some(&s), Some(&o), monday_noon).open);
        assert_eq!(status(Some(&s), Some(&o), monday_noon).why, Why::Manual);
        // Still closed at Monday's closing, and overnight.
        assert!(!status(Some(&s), Some(&o), utc("2026-11-24T08:59:59Z")).open);
        // Tuesday's opening ends it.
        let tuesday = status(Some(&s), Some(&o), utc("2026-11-24T09:00:00Z"));
        assert!(tuesday.open);
        assert_eq!(tuesday.why, Why::Hours);
        // Without a schedule: until reopened.
        let forever = close(None, None, "admin API", monday_noon);
        assert_eq!(forever.until, None);
        assert!(!status(None, Some(&forever), utc("2030-01-01T00:00:00Z")).open);
        // With a time: until then.
        let until = utc("2026-11-23T14:00:00Z");
        let o = close(Some(&s), Some(until), "admin API", monday_noon);
        assert!(!status(Some(&s), Some(&o), until - 1).open);
        assert!(status(Some(&s), Some(&o), until).open);
    }

    #[test]
    fn opening_lifts_a_closure_or_holds_a_closed_line_open_until_its_next_change() {
        let s = office();
        let monday_noon = utc("2026-11-23T12:00:00Z");
        assert_eq!(open(Some(&s), None, "admin API", monday_noon), None);
        let evening = utc("2026-11-23T18:00:00Z");
        let o = open(Some(&s), None, "admin API", evening).expect("override");
        assert_eq!(o.until, Some(utc("2026-11-24T09:00:00Z")));
        assert!(status(Some(&s), Some(&o), evening).open);
        let later = utc("2026-11-23T20:00:00Z");
        let o = open(Some(&s), Some(later), "admin API", monday_noon).expect("override");
        assert!(status(Some(&s), Some(&o), utc("2026-11-23T19:00:00Z")).open);
        assert!(!status(Some(&s), Some(&o), later).open);
    }
}
