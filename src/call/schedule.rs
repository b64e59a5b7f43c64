//! Opening hours: when a line is open, evaluated in the schedule's own time zone with the IANA
//! database (jiff: the system copy when there is one, else the copy built into the binary, so a
//! container without `/usr/share/zoneinfo` still knows every zone). Pure: the time is passed in.
//!
//! The rules, pinned by the tests below:
//! - A range is `[from, to)` on wall-clock time: open at `from`, closed at `to`. `to = "24:00"`
//!   closes at the end of the day. A range whose `to` is not after its `from` crosses midnight and
//!   belongs to the day it starts on (Fri 22:00–06:00 opens Friday night until Saturday 06:00).
//! - Wall-clock time decides across daylight-saving changes: in the spring-forward gap the clock
//!   jumps over the missing hour (a range 01:30–02:30 is open from 01:30 until the jump, then
//!   03:00 is past it); in the fall-back overlap both occurrences of an hour count (a range ending
//!   01:30 is open in both 01:00–01:30).
//! - Closed days (a fixed date, or a yearly month-day; Feb 29 only in leap years) are dates in the
//!   schedule's zone, and close the whole local day. Closed beats open: a range that starts on a
//!   closed day does not open, even past midnight, and a closed day is closed even inside a range
//!   that started the day before. Movable holidays are listed as dates.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::time::Millis;

/// A week of opening hours, closed days, in one time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    zone: TimeZone,
    open: Vec<Hours>,
    closed: Vec<ClosedDay>,
}

/// One opening range, on some days of the week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    /// Monday = 0 … Sunday = 6.
    pub days: [bool; 7],
    /// Minutes since midnight, 0..1440.
    pub from: u16,
    /// Minutes since midnight, 1..=1440 (1440 = 24:00). Not after `from`: crosses midnight.
    pub to: u16,
}

/// A day the line is closed, whatever its hours say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedDay {
    Date(Date),
    /// Every year on this month and day.
    Yearly {
        month: i8,
        day: i8,
    },
}

/// Whether a schedule is open at some instant, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Openness {
    Open,
    /// A closed day (a holiday).
    ClosedDay,
    /// Outside the opening hours.
    OutsideHours,
}

impl Openness {
    pub fn is_open(self) -> bool {
        self == Openness::Open
    }
}

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("time_zone: `{0}` is not an IANA time zone (e.g. America/New_York, Europe/Berlin)")]
    Zone(String),
    #[error("`{0}` is not a day (mon, tue, wed, thu, fri, sat, sun)")]
    Day(String),
    #[error("`{0}` is not a time of day HH:MM (00:00 to 24:00)")]
    Time(String),
    #[error("`{0}` is not a date YYYY-MM-DD")]
    Date(String),
    #[error("`{0}` is not a yearly date MM-DD")]
    Yearly(String),
}

/// `mon` … `sun` (any case, or the full English name) as Monday = 0 … Sunday = 6.
pub fn day_index(s: &str) -> Result<usize, ScheduleError> {
    let lower = s.trim().to_ascii_lowercase();
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    days.iter()
        .position(|d| lower.starts_with(d) && (lower.len() == 3 || lower.ends_with("day")))
        .ok_or_else(|| ScheduleError::Day(s.to_owned()))
}

/// `HH:MM` as minutes since midnight; `24:00` is 1440.
pub fn minutes(s: &str) -> Result<u16, ScheduleError> {
    let bad = || ScheduleError::Time(s.to_owned());
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h.to_string().len() > 2 || m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl ClosedDay {
    /// `YYYY-MM-DD`.
    pub fn date(s: &str) -> Result<ClosedDay, ScheduleError> {
        s.trim()
            .parse::<Date>()
            .map(ClosedDay::Date)
            .map_err(|_| ScheduleError::Date(s.to_owned()))
    }

    /// `MM-DD` (02-29 allowed: it closes only leap years' Feb 29).
    pub fn yearly(s: &str) -> Result<ClosedDay, ScheduleError> {
        let bad = || ScheduleError::Yearly(s.to_owned());
        let (m, d) = s.trim().split_once('-').ok_or_else(bad)?;
        let (month, day): (i8, i8) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
        // Valid in a leap year: 2024.
        Date::new(2024, month, day).map_err(|_| bad())?;
        Ok(ClosedDay::Yearly { month, day })
    }

    fn closes(self, date: Date) -> bool {
        match self {
            ClosedDay::Date(d) => d == date,
            ClosedDay::Yearly { month, day } => date.month() == month && date.day() == day,
        }
    }
}

fn index(day: Weekday) -> usize {
    usize::from(day.to_monday_zero_offset().unsigned_abs())
}

impl Schedule {
    /// The schedule's time zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// A schedule in the IANA zone `zone`.
    pub fn new(
        zone: &str,
        open: Vec<Hours>,
        closed: Vec<ClosedDay>,
    ) -> Result<Schedule, ScheduleError> {
        let tz = TimeZone::get(zone.trim()).map_err(|_| ScheduleError::Zone(zone.to_owned()))?;
        Ok(Schedule {
            zone: tz,
            open,
            closed,
        })
    }

    fn closed_on(&self, date: Date) -> bool {
        self.closed.iter().any(|c| c.closes(date))
    }

    /// Whether the schedule is open at `now`.
    pub fn at(&self, now: Millis) -> Openness {
        let Ok(ts) = Timestamp::from_millisecond(i64::try_from(now).unwrap_or(i64::MAX)) else {
            return Openness::OutsideHours;
        };
        let local = ts.to_zoned(self.zone.clone());
        let (date, time) = (local.date(), local.time());
        if self.closed_on(date) {
            return Openness::ClosedDay;
        }
        let secs = u32::from(time.hour().unsigned_abs()) * 3600
            + u32::from(time.minute().unsigned_abs()) * 60
            + u32::from(time.second().unsigned_abs());
        let today = index(date.weekday());
        let yesterday = (today + 6) % 7;
        let yesterday_open = date.yesterday().is_ok_and(|d| !self.closed_on(d));
        let open = self.open.iter().any(|h| {
            let (from, to) = (u32::from(h.from) * 60, u32::from(h.to) * 60);
            let crosses = to <= from;
            let started_today = h.days[today] && secs >= from && (crosses || secs < to);
            let from_yesterday = crosses && h.days[yesterday] && yesterday_open && secs < to;
            started_today || from_yesterday
        });
        if open {
            Openness::Open
        } else {
            Openness::OutsideHours
        }
    }

    /// The first instant after `now` when the schedule opens or closes, within the next
    /// [`Schedule::HORIZON_DAYS`] days (`None`: it never changes in that time).
    pub fn next_change(&self, now: Millis) -> Option<Millis> {
        self.changes(now).next().map(|(t, _)| t)
    }

    /// The first instant after `now` when the schedule opens (after it closes, when it is open
    /// now).
    pub fn next_opening(&self, now: Millis) -> Option<Millis> {
        self.changes(now).find(|&(_, open)| open).map(|(t, _)| t)
    }

    /// How far ahead [`Schedule::next_change`] looks.
    pub const HORIZON_DAYS: i16 = 400;

    /// Every instant after `now` at which the openness may change (midnights, the ends of every
    /// range, the zone's own transitions), in order, each with the openness from then on.
    fn changes(&self, now: Millis) -> impl Iterator<Item = (Millis, bool)> + '_ {
        let mut instants: Vec<Millis> = Vec::new();
        if let Ok(ts) = Timestamp::from_millisecond(i64::try_from(now).unwrap_or(i64::MAX)) {
            let today = ts.to_zoned(self.zone.clone()).date();
            let millis = |dt: jiff::civil::DateTime| {
                self.zone
                    .to_ambiguous_zoned(dt)
                    .compatible()
                    .ok()
                    .and_then(|z| u64::try_from(z.timestamp().as_millisecond()).ok())
            };
            for offset in -1..Self::HORIZON_DAYS {
                let Ok(day) = today.checked_add(jiff::Span::new().days(offset)) else {
                    continue;
                };
                instants.extend(millis(day.to_datetime(jiff::civil::Time::midnight())));
                for h in &self.open {
                    for m in [h.from, h.to] {
                        let (extra, m) = (i64::from(m / 1440), m % 1440);
                        let time = jiff::civil::Time::new(
                            i8::try_from(m / 60).unwrap_or(0),
                            i8::try_from(m % 60).unwrap_or(0),
                            0,
                            0,
                        );
                        let date = day.checked_add(jiff::Span::new().days(extra));
                        if let (Ok(time), Ok(date)) = (time, date) {
                            instants.extend(millis(date.to_datetime(time)));
                        }
                    }
                }
            }
            let horizon =
                now.saturating_add(u64::from(Self::HORIZON_DAYS.unsigned_abs()) * 86_400_000);
            instants.extend(
                self.zone
                    .following(ts)
                    .map(|t| t.timestamp().as_millisecond())
                    .map_while(|t| u64::try_from(t).ok().filter(|t| *t < horizon)),
            );
        }
        instants.retain(|&t| t > now);
        instants.sort_unstable();
        instants.dedup();
        let mut open = self.at(now).is_open();
        instants.into_iter().filter_map(move |t| {
            let o = self.at(t).is_open();
            (o != open).then(|| {
                open = o;
                (t, o)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2026-03-08T01:59:59` in `zone`, as Millis (for the civil times that exist).
    fn at(zone: &str, civil: &str) -> Millis {
        let dt: jiff::civil::DateTime = civil.parse().expect("civil time");
        let tz = TimeZone::get(zone).expect("zone");
        let ts = dt.to_zoned(tz).expect("exists").timestamp();
        u64::try_from(ts.as_millisecond()).expect("after 1970")
    }

    fn utc(instant: &str) -> Millis {
        let ts: Timestamp = instant.parse().expect("instant");
        u64::try_from(ts.as_millisecond()).expect("after 1970")
    }

    fn hours(days: &[&str], from: &str, to: &str) -> Hours {
        let mut set = [false; 7];
        for d in days {
            set[day_index(d).expect("day")] = true;
        }
        Hours {
            days: set,
            from: minutes(from).expect("from"),
            to: minutes(to).expect("to"),
        }
    }

    const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

    fn office(zone: &str) -> Schedule {
        Schedule::new(zone, vec![hours(&WEEKDAYS, "09:00", "17:00")], vec![]).expect("schedule")
    }

    #[test]
    fn ranges_open_at_from_and_close_at_to() {
        let s = office("America/New_York");
        let ny = |t: &str| s.at(at("America/New_York", t));
        // 2026-11-23 is a Monday.
        assert_eq!(ny("2026-11-23T08:59:59"), Openness::OutsideHours);
        assert_eq!(ny("2026-11-23T09:00:00"), Openness::Open);
        assert_eq!(ny("2026-11-23T16:59:59"), Openness::Open);
        assert_eq!(ny("2026-11-23T17:00:00"), Openness::OutsideHours);
        assert_eq!(ny("2026-11-22T12:00:00"), Openness::OutsideHours, "Sunday");
        // The same instant is 14:00 in New York and 19:00 in London.
        let instant = utc("2026-11-23T19:00:00Z");
        assert_eq!(s.at(instant), Openness::Open);
        assert_eq!(office("Europe/London").at(instant), Openness::OutsideHours);
    }

    #[test]
    fn the_next_change_is_found_across_weekends_holidays_and_daylight_saving() {
        let ny = |t: &str| at("America/New_York", t);
        let s = Schedule::new(
            "America/New_York",
            vec![hours(&WEEKDAYS, "09:00", "17:00")],
            vec![ClosedDay::date("2026-11-26").expect("date")],
        )
        .expect("schedule");
        // Monday 12:00: closes at 17:00; opens again Tuesday 09:00.
        assert_eq!(
            s.next_change(ny("2026-11-23T12:00:00")),
            Some(ny("2026-11-23T17:00:00"))
        );
        assert_eq!(
            s.next_opening(ny("2026-11-23T12:00:00")),
            Some(ny("2026-11-24T09:00:00"))
        );
        // Wednesday evening: Thursday is a holiday, so Friday 09:00.
        assert_eq!(
            s.next_opening(ny("2026-11-25T18:00:00")),
            Some(ny("2026-11-27T09:00:00"))
        );
        // Friday evening: Monday.
        assert_eq!(
            s.next_opening(ny("2026-11-27T17:00:00")),
            Some(ny("2026-11-30T09:00:00"))
        );
        // A range in the spring-forward gap opens when the clock jumps (03:00 EDT).
        let gap = Schedule::new(
            "America/New_York",
            vec![hours(&["sun"], "02:30", "05:00")],
            vec![],
        )
        .expect("schedule");
        assert_eq!(
            gap.next_opening(ny("2026-03-08T00:00:00")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        // Always open, never open: no change.
        let always = Schedule::new(
            "UTC",
            vec![hours(
                &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "00:00",
                "24:00",
            )],
            vec![],
        )
        .expect("s");
        assert_eq!(always.next_change(utc("2026-11-23T12:00:00Z")), None);
        let never = Schedule::new("UTC", vec![], vec![]).expect("s");
        assert_eq!(never.next_opening(utc("2026-11-23T12:00:00Z")), None);
    }

    #[test]
    fn a_whole_day_and_a_range_across_midnight() {
        let all_day =
            Schedule::new("UTC", vec![hours(&["sat"], "00:00", "24:00")], vec![]).expect("s");
        assert!(all_day.at(utc("2026-11-28T00:00:00Z")).is_open());
        assert!(all_day.at(utc("2026-11-28T23:59:59Z")).is_open());
        assert!(!all_day.at(utc("2026-11-29T00:00:00Z")).is_open());
        // Friday 22:00 to Saturday 06:00 belongs to Friday.
        let nights =
            Schedule::new("UTC", vec![hours(&["fri"], "22:00", "06:00")], vec![]).expect("s");
        assert!(!nights.at(utc("2026-11-27T21:59:59Z")).is_open());
        assert!(nights.at(utc("2026-11-27T22:00:00Z")).is_open());
        assert!(
            nights.at(utc("2026-11-28T05:59:59Z")).is_open(),
            "Saturday morning"
        );
        assert!(!nights.at(utc("2026-11-28T06:00:00Z")).is_open());
        assert!(
            !nights.at(utc("2026-11-28T22:30:00Z")).is_open(),
            "not Saturday night"
        );
        assert!(
            !nights.at(utc("2026-11-27T03:00:00Z")).is_open(),
            "Thursday night is not Friday's"
        );
    }

    #[test]
    fn closed_days_beat_open_hours_even_across_midnight() {
        let friday = ClosedDay::date("2026-11-27").expect("date");
        let saturday = ClosedDay::date("2026-11-28").expect("date");
        let nights = |closed| {
            Schedule::new("UTC", vec![hours(&["fri"], "22:00", "06:00")], closed).expect("s")
        };
        // Saturday closed: the Friday-night range stops at midnight.
        let s = nights(vec![saturday]);
        assert!(s.at(utc("2026-11-27T23:00:00Z")).is_open());
        assert_eq!(s.at(utc("2026-11-28T02:00:00Z")), Openness::ClosedDay);
        // Friday closed: the range that starts on it does not open, even past midnight.
        let s = nights(vec![friday]);
        assert_eq!(s.at(utc("2026-11-27T23:00:00Z")), Openness::ClosedDay);
        assert_eq!(s.at(utc("2026-11-28T02:00:00Z")), Openness::OutsideHours);
    }

    #[test]
    fn closed_days_are_dates_in_the_schedules_zone() {
        let christmas = ClosedDay::yearly("12-25").expect("yearly");
        let s = Schedule::new(
            "America/Los_Angeles",
            vec![hours(&WEEKDAYS, "00:00", "24:00")],
            vec![christmas],
        )
        .expect("s");
        // 23:30 on Dec 24 in Los Angeles is already Dec 25 in UTC: still open.
        assert!(s.at(utc("2026-12-25T07:30:00Z")).is_open());
        // 00:30 on Dec 25 in Los Angeles: closed.
        assert_eq!(s.at(utc("2026-12-25T08:30:00Z")), Openness::ClosedDay);
        // Yearly Feb 29 closes only leap years.
        let leap = ClosedDay::yearly("02-29").expect("yearly");
        let s = Schedule::new(
            "UTC",
            vec![hours(
                &["mon", "thu", "fri", "sat", "sun"],
                "00:00",
                "24:00",
            )],
            vec![leap],
        )
        .expect("s");
        assert_eq!(s.at(utc("2028-02-29T12:00:00Z")), Openness::ClosedDay);
        assert!(s.at(utc("2027-03-01T12:00:00Z")).is_open());
        assert!(ClosedDay::yearly("02-30").is_err() && ClosedDay::date("2026-02-29").is_err());
    }

    #[test]
    fn daylight_saving_follows_the_wall_clock() {
        // 2026-03-08 (Sunday) in New York: 02:00 jumps to 03:00.
        let s = Schedule::new(
            "America/New_York",
            vec![hours(&["sun"], "01:30", "02:30")],
            vec![],
        )
        .expect("s");
        assert!(s
            .at(at("America/New_York", "2026-03-08T01:59:59"))
            .is_open());
        // One second later the clock reads 03:00:00, past 02:30.
        let jump = at("America/New_York", "2026-03-08T01:59:59") + 1000;
        assert!(!s.at(jump).is_open());
        // 2026-11-01 (Sunday): 01:00–02:00 happens twice; a range ending 01:30 is open in both.
        let s = Schedule::new(
            "America/New_York",
            vec![hours(&["sun"], "00:00", "01:30")],
            vec![],
        )
        .expect("s");
        let first = utc("2026-11-01T05:15:00Z"); // 01:15 EDT
        let second = utc("2026-11-01T06:15:00Z"); // 01:15 EST
        assert!(s.at(first).is_open() && s.at(second).is_open());
        assert!(!s.at(utc("2026-11-01T06:30:00Z")).is_open(), "01:30 EST");
    }

    #[test]
    fn southern_hemisphere_and_half_hour_zones() {
        // Sydney is on daylight time (UTC+11) in November.
        let sydney = office("Australia/Sydney");
        assert!(
            sydney.at(utc("2026-11-23T22:00:00Z")).is_open(),
            "Tue 09:00 AEDT"
        );
        assert!(!sydney.at(utc("2026-11-23T21:59:59Z")).is_open());
        // Kolkata is UTC+5:30, Kathmandu UTC+5:45.
        assert!(office("Asia/Kolkata")
            .at(utc("2026-11-23T03:30:00Z"))
            .is_open());
        assert!(!office("Asia/Kolkata")
            .at(utc("2026-11-23T03:29:59Z"))
            .is_open());
        assert!(office("Asia/Kathmandu")
            .at(utc("2026-11-23T03:15:00Z"))
            .is_open());
        assert!(!office("Asia/Kathmandu")
            .at(utc("2026-11-23T03:14:59Z"))
            .is_open());
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert_eq!(
            Schedule::new("America/Newyork", vec![], vec![]).expect_err("zone"),
            ScheduleError::Zone("America/Newyork".into())
        );
        for bad in ["9", "25:00", "24:30", "12:60", "noon", "123:00"] {
            assert!(minutes(bad).is_err(), "{bad}");
        }
        assert_eq!(minutes("24:00"), Ok(1440));
        assert_eq!(minutes("9:05"), Ok(545));
        assert_eq!(day_index("Friday"), Ok(4));
        assert!(day_index("fr").is_err() && day_index("funday").is_err());
    }
}
