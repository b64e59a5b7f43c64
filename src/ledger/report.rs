//! Call reports from the ledger: per line and per agent, for a day (in the line's time zone) or a
//! range. The figures are a pure function of the calls' rows ([`summarize`]):
//!
//! - offered: calls that reached the line's agents or voicemail (answered, voicemail, missed,
//!   abandoned); closed, turned away and refused are counted apart;
//! - abandoned: the caller hung up before an answer, after `short_abandon_secs` or more; short
//!   abandons are shown apart and left out of the rates;
//! - answer rate and service level: answered (within `service_level_secs`) over offered less
//!   short abandons; ASA: the mean wait of answered calls; talk: their mean talk time.

use serde::Serialize;

use super::{CallQuery, CallRow, Ledger, LegRow};
use crate::config::Settings;
use crate::domain::LineId;
use crate::time::Millis;

/// What a report counts by.
#[derive(Debug, Clone)]
pub struct Rules {
    pub short_abandon_secs: u64,
    pub service_level_secs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LineFigures {
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub voicemail: u64,
    pub missed: u64,
    pub closed: u64,
    pub turned_away: u64,
    pub refused: u64,
    /// Still live (or not settled yet) when the report was made.
    pub open: u64,
    pub answer_rate: Option<f64>,
    pub service_level: Option<f64>,
    pub asa_secs: Option<f64>,
    pub avg_talk_secs: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentFigures {
    pub agent: String,
    /// `<Dial>`s that rang them.
    pub rung: u64,
    /// `<Dial>`s that rang out on them (a leg cut short because someone else answered is not a
    /// miss, nor one the caller hung up on).
    pub missed: u64,
    pub answered: u64,
    pub talk_secs: u64,
    pub avg_talk_secs: Option<f64>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| (n as f64 / d as f64 * 10_000.0).round() / 10_000.0)
}

/// What a line's figures are computed from: counts and sums, which add up across lines and can
/// be read from the database in one aggregate query ([`super::Ledger::tally`]) as well as from
/// rows ([`Tally::of`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub voicemail: u64,
    pub missed: u64,
    pub closed: u64,
    pub turned_away: u64,
    pub refused: u64,
    pub open: u64,
    /// Answered within the service level.
    pub within: u64,
    /// Sums over answered calls.
    pub answered_wait_secs: u64,
    pub answered_talk_secs: u64,
}

impl Tally {
    /// The tally of `rows`.
    pub fn of(rows: &[CallRow], rules: &Rules) -> Tally {
        let mut t = Tally::default();
        for r in rows {
            let wait = r.wait_secs.unwrap_or(0);
            t.add(
                r.outcome.as_deref(),
                1,
                u64::from(wait < rules.short_abandon_secs),
                u64::from(wait <= rules.service_level_secs),
                wait,
                r.talk_secs.unwrap_or(0),
            );
        }
        t
    }

    /// Adds `n` calls of `outcome` (`None`: still open), of which `short` waited less than the
    /// short-abandon time and `within` no longer than the service level, waiting `wait` and
    /// talking `talk` seconds in all.
    pub fn add(
        &mut self,
        outcome: Option<&str>,
        n: u64,
        short: u64,
        within: u64,
        wait: u64,
        talk: u64,
    ) {
        match outcome {
            Some("answered") => {
                self.answered += n;
                self.within += within;
                self.answered_wait_secs += wait;
                self.answered_talk_secs += talk;
            }
            Some("abandoned") => {
                self.short_abandoned += short;
                self.abandoned += n.saturating_sub(short);
            }
            Some("voicemail") => self.voicemail += n,
            Some("missed") => self.missed += n,
            Some("closed") => self.closed += n,
            Some("turned_away") => self.turned_away += n,
            Some("refused") => self.refused += n,
            _ => self.open += n,
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.answered += o.answered;
        self.abandoned += o.abandoned;
        self.short_abandoned += o.short_abandoned;
        self.voicemail += o.voicemail;
        self.missed += o.missed;
        self.closed += o.closed;
        self.turned_away += o.turned_away;
        self.refused += o.refused;
        self.open += o.open;
        self.within += o.within;
        self.answered_wait_secs += o.answered_wait_secs;
        self.answered_talk_secs += o.answered_talk_secs;
    }

    /// The figures people read.
    pub fn figures(&self) -> LineFigures {
        let offered =
            self.answered + self.abandoned + self.short_abandoned + self.voicemail + self.missed;
        let counted = offered - self.short_abandoned;
        let mean =
            |sum: u64, n: u64| (n > 0).then(|| (sum as f64 / n as f64 * 10.0).round() / 10.0);
        LineFigures {
            offered,
            answered: self.answered,
            abandoned: self.abandoned,
            short_abandoned: self.short_abandoned,
            voicemail: self.voicemail,
            missed: self.missed,
            closed: self.closed,
            turned_away: self.turned_away,
            refused: self.refused,
            open: self.open,
            answer_rate: ratio(self.answered, counted),
            service_level: ratio(self.within, counted),
            asa_secs: mean(self.answered_wait_secs, self.answered),
            avg_talk_secs: mean(self.answered_talk_secs, self.answered),
        }
    }
}

/// A line's figures from its calls' rows.
pub fn summarize(rows: &[CallRow], rules: &Rules) -> LineFigures {
    Tally::of(rows, rules).figures()
}

/// Per agent: rung and missed from the legs, answered and talk time from the calls; most answered
/// first.
pub fn by_agent(rows: &[CallRow], legs: &[LegRow]) -> Vec<AgentFigures> {
    let mut agents: Vec<AgentFigures> = Vec::new();
    let mut of = |name: &str| -> usize {
        match agents.iter().position(|a| a.agent == name) {
            Some(i) => i,
            None => {
                agents.push(AgentFigures {
                    agent: name.to_owned(),
                    ..AgentFigures::default()
                });
                agents.len() - 1
            }
        }
    };
    let mut counts = Vec::new();
    for leg in legs {
        counts.push((of(&leg.agent_name), 1, u64::from(leg.rang_out), 0, 0));
    }
    for r in rows
        .iter()
        .filter(|r| r.outcome.as_deref() == Some("answered"))
    {
        let name = r.answered_by.as_deref().unwrap_or("(unknown)");
        counts.push((of(name), 0, 0, 1, r.talk_secs.unwrap_or(0)));
    }
    for (i, rung, missed, answered, talk) in counts {
        let a = &mut agents[i];
        a.rung += rung;
        a.missed += missed;
        a.answered += answered;
        a.talk_secs += talk;
    }
    for a in &mut agents {
        a.avg_talk_secs = ratio(a.talk_secs, a.answered).map(|v| (v * 10.0).round() / 10.0);
    }
    agents.sort_by(|a, b| b.answered.cmp(&a.answered).then(a.agent.cmp(&b.agent)));
    agents
}

/// The lines a report covers, each with its time zone.
#[derive(Debug, Clone)]
pub struct Spec {
    pub lines: Vec<(LineId, String, jiff::tz::TimeZone)>,
    pub agents_zone: jiff::tz::TimeZone,
    pub rules: Rules,
}

impl Spec {
    pub fn of(settings: &Settings) -> Spec {
        let default = settings.reports.timezone.clone();
        let lines = match settings.lines.is_empty() {
            true => vec![(LineId::main(), "Main line".to_owned(), default.clone())],
            false => settings
                .lines
                .iter()
                .map(|l| {
                    let zone = l
                        .schedule
                        .as_ref()
                        .and_then(|s| settings.schedules.get(s))
                        .map_or_else(|| default.clone(), |s| s.zone().clone());
                    (l.id.clone(), l.name.clone(), zone)
                })
                .collect(),
        };
        Spec {
            lines,
            agents_zone: default,
            rules: Rules {
                short_abandon_secs: settings.reports.short_abandon_secs,
                service_level_secs: settings.reports.service_level_secs,
            },
        }
    }
}

/// Which period: a calendar day (in each line's zone), or an explicit range.
#[derive(Debug, Clone)]
pub enum Period {
    Day(jiff::civil::Date),
    Range { from: Millis, to: Millis },
}

impl Period {
    /// `[from, to)` in `zone`.
    fn window(&self, zone: &jiff::tz::TimeZone) -> Result<(Millis, Millis), String> {
        match self {
            Period::Range { from, to } => Ok((*from, *to)),
            Period::Day(day) => {
                let start = day.to_zoned(zone.clone()).map_err(|e| e.to_string())?;
                let end = start.tomorrow().map_err(|e| e.to_string())?;
                let ms =
                    |z: &jiff::Zoned| u64::try_from(z.timestamp().as_millisecond()).unwrap_or(0);
                Ok((ms(&start), ms(&end)))
            }
        }
    }

    /// `2026-11-22`, or an instant (RFC 3339 or a duration back from `now`) pair.
    pub fn parse(
        day: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        now: Millis,
    ) -> Result<Period, String> {
        match (day, from) {
            (Some(day), None) => day
                .trim()
                .parse::<jiff::civil::Date>()
                .map(Period::Day)
                .map_err(|_| {
                    format!(
                        "day: `{}` is not a date (2026-11-22)",
                        day.chars().take(20).collect::<String>()
                    )
                }),
            (None, Some(from)) => {
                let from = super::instant(from, now).map_err(|e| format!("from {e}"))?;
                let to = match to {
                    Some(t) => super::instant(t, now).map_err(|e| format!("to {e}"))?,
                    None => now,
                };
                Ok(Period::Range { from, to })
            }
            (Some(_), Some(_)) => Err("give a day, or from (and to), not both".into()),
            (None, None) => Err("give a day (2026-11-22), or from (and to)".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LineReport {
    pub line: String,
    pub name: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub figures: LineFigures,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rules: RulesView,
    pub lines: Vec<LineReport>,
    /// Over the lines reported, each in its own window.
    pub agents: Vec<AgentFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RulesView {
    pub short_abandon_secs: u64,
    pub service_level_secs: u64,
}

/// The report of `period`, for `line` or every line.
pub async fn report(
    ledger: &Ledger,
    spec: &Spec,
    period: &Period,
    line: Option<&str>,
) -> Result<Report, String> {
    let lines: Vec<_> = spec
        .lines
        .iter()
        .filter(|(id, ..)| line.is_none_or(|l| id.as_str() == l))
        .collect();
    if lines.is_empty() {
        return Err(format!("no line `{}`", line.unwrap_or_default()));
    }
    let mut reports = Vec::new();
    let mut everyone = Vec::new();
    let mut all_legs = Vec::new();
    for (id, name, zone) in lines {
        let (from, to) = period.window(zone)?;
        let query = CallQuery {
            from: Some(from),
            to: Some(to),
            line: Some(id.as_str().to_owned()),
            outcome: None,
            limit: u32::MAX,
        };
        let rows = ledger.calls(&query).await.map_err(|e| e.to_string())?;
        let legs = ledger
            .legs(id.as_str(), from, to)
            .await
            .map_err(|e| e.to_string())?;
        all_legs.extend(legs);
        reports.push(LineReport {
            line: id.as_str().to_owned(),
            name: name.clone(),
            timezone: zone.iana_name().unwrap_or("UTC").to_owned(),
            from: crate::lines::rfc3339(from),
            to: crate::lines::rfc3339(to),
            figures: summarize(&rows, &spec.rules),
        });
        everyone.extend(rows);
    }
    Ok(Report {
        rules: RulesView {
            short_abandon_secs: spec.rules.short_abandon_secs,
            service_level_secs: spec.rules.service_level_secs,
        },
        lines: reports,
        agents: by_agent(&everyone, &all_legs),
    })
}

/// The report as people read it.
pub fn render(report: &Report) -> String {
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0));
    let secs = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}s"));
    let lines = report
        .lines
        .iter()
        .map(|l| {
            let f = &l.figures;
            [
                l.line.clone(),
                f.offered.to_string(),
                f.answered.to_string(),
                format!("{} (+{} short)", f.abandoned, f.short_abandoned),
                f.voicemail.to_string(),
                f.missed.to_string(),
                pct(f.answer_rate),
                secs(f.asa_secs),
                pct(f.service_level),
                secs(f.avg_talk_secs),
                format!("{} {}", &l.from[..10.min(l.from.len())], l.timezone),
            ]
        })
        .collect();
    let sl = format!("SL {}s", report.rules.service_level_secs);
    let mut out = crate::admin_client::table(
        [
            "LINE",
            "OFFERED",
            "ANSWERED",
            "ABANDONED",
            "VOICEMAIL",
            "MISSED",
            "ANSWER RATE",
            "ASA",
            &sl,
            "AVG TALK",
            "FROM",
        ],
        lines,
    );
    let agents = report
        .agents
        .iter()
        .map(|a| {
            [
                a.agent.clone(),
                a.rung.to_string(),
                a.answered.to_string(),
                a.missed.to_string(),
                format!("{}s", a.talk_secs),
                secs(a.avg_talk_secs),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&crate::admin_client::table(
        ["AGENT", "RUNG", "ANSWERED", "MISSED", "TALK", "AVG TALK"],
        agents,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(outcome: &str, wait: Option<u64>, talk: Option<u64>, by: Option<&str>) -> CallRow {
        CallRow {
            call_sid: "CA".into(),
            line: "main".into(),
            caller: "+1".into(),
            called: "+2".into(),
            started_at: 0,
            answered_at: None,
            answered_by: by.map(str::to_owned),
            ended_at: None,
            outcome: (!outcome.is_empty()).then(|| outcome.to_owned()),
            wait_secs: wait,
            talk_secs: talk,
            detail: None,
        }
    }

    #[test]
    fn figures_follow_the_definitions() {
        let rules = Rules {
            short_abandon_secs: 10,
            service_level_secs: 20,
        };
        let rows = vec![
            call("answered", Some(5), Some(60), Some("Ada")),
            call("answered", Some(30), Some(120), Some("Grace")),
            call("answered", Some(10), Some(30), Some("Ada")),
            call("abandoned", Some(4), None, None),
            call("abandoned", Some(45), None, None),
            call("voicemail", None, None, None),
            call("missed", None, None, None),
            call("closed", None, None, None),
            call("refused", None, None, None),
            call("", None, None, None),
        ];
        let f = summarize(&rows, &rules);
        assert_eq!(
            (
                f.offered,
                f.answered,
                f.abandoned,
                f.short_abandoned,
                f.voicemail,
                f.missed
            ),
            (7, 3, 1, 1, 1, 1)
        );
        assert_eq!((f.closed, f.refused, f.open), (1, 1, 1));
        // 3 answered of 6 (7 offered less 1 short abandon); 2 within 20 s.
        assert_eq!(f.answer_rate, Some(0.5));
        assert_eq!(f.service_level, Some(0.3333));
        assert_eq!(f.asa_secs, Some(15.0));
        assert_eq!(f.avg_talk_secs, Some(70.0));
        let leg = |name: &str, answered, rang_out| LegRow {
            agent_id: name.to_lowercase(),
            agent_name: name.into(),
            answered,
            rang_out,
        };
        let legs = [
            leg("Ada", true, false),
            leg("Grace", false, false),
            leg("Ada", false, true),
            leg("Alan", false, true),
        ];
        let agents = by_agent(&rows, &legs);
        assert_eq!(agents[0].agent, "Ada");
        assert_eq!((agents[0].rung, agents[0].missed), (2, 1));
        assert_eq!((agents[0].answered, agents[0].talk_secs), (2, 90));
        let alan = agents.iter().find(|a| a.agent == "Alan").expect("Alan");
        assert_eq!((alan.rung, alan.missed, alan.answered), (1, 1, 0));
        assert_eq!(agents[0].avg_talk_secs, Some(45.0));
        assert_eq!(agents[1].agent, "Grace");
        let none = summarize(&[], &rules);
        assert_eq!((none.answer_rate, none.asa_secs), (None, None));
    }

    #[test]
    fn a_day_is_the_lines_own() {
        let day = Period::parse(Some("2026-11-22"), None, None, 0).expect("day");
        let ny = jiff::tz::TimeZone::get("America/New_York").expect("zone");
        let (from, to) = day.window(&ny).expect("window");
        assert_eq!(crate::lines::rfc3339(from), "2026-11-22T05:00:00Z");
        assert_eq!(to - from, 86_400_000);
        // The day DST ends is 25 hours long.
        let fall = Period::parse(Some("2026-11-01"), None, None, 0).expect("day");
        let (from, to) = fall.window(&ny).expect("window");
        assert_eq!(to - from, 25 * 3_600_000);
        assert!(Period::parse(Some("22/11/2026"), None, None, 0).is_err());
        assert!(Period::parse(None, None, None, 0).is_err());
        let range = Period::parse(None, Some("24h"), None, 86_400_000).expect("range");
        assert!(matches!(
            range,
            Period::Range {
                from: 0,
                to: 86_400_000
            }
        ));
    }
}
