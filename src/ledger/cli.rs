//! `switchboard calls`: the call history from the database the configuration names (SQLite in
//! `paths.data`, or `ledger.url`), as a table or CSV. Caller numbers are masked under privacy
//! mode, whatever the ledger keeps.

use super::{instant, shown, CallQuery, CallRow, Ledger};
use crate::config::Settings;
use crate::lines::rfc3339;
use crate::time::Millis;

#[derive(Debug, Clone, clap::Args)]
pub struct CallsArgs {
    /// Calls started since: RFC 3339, or a duration back from now.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Calls started before: RFC 3339, or a duration back from now [default: now].
    #[arg(long)]
    pub until: Option<String>,
    /// Only this line's calls (its id).
    #[arg(long)]
    pub line: Option<String>,
    /// Only calls with this outcome (answered, voicemail, missed, abandoned, closed,
    /// turned_away, refused).
    #[arg(long)]
    pub outcome: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Comma-separated values with a header row, every column, times in RFC 3339 UTC.
    #[arg(long)]
    pub csv: bool,
}

/// Runs the command at `now`; returns what to print, or why it failed.
pub async fn run(settings: &Settings, args: CallsArgs, now: Millis) -> Result<String, String> {
    let query = CallQuery {
        from: Some(instant(&args.since, now).map_err(|e| format!("--since {e}"))?),
        to: args
            .until
            .as_deref()
            .map(|t| instant(t, now).map_err(|e| format!("--until {e}")))
            .transpose()?,
        line: args.line,
        outcome: args.outcome,
        limit: args.limit.max(1),
    };
    let ledger = Ledger::open(settings)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the call ledger is off (ledger.enabled = false)")?;
    let mask = settings.privacy.mask_caller_numbers;
    let rows: Vec<CallRow> = ledger
        .calls(&query)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| shown(r, mask))
        .collect();
    match args.csv {
        true => csv(&rows),
        false => Ok(table(&rows)),
    }
}

fn csv(rows: &[CallRow]) -> Result<String, String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "call_sid",
        "line",
        "caller",
        "called",
        "started_at",
        "answered_at",
        "answered_by",
        "ended_at",
        "outcome",
        "wait_secs",
        "talk_secs",
        "detail",
    ];
    out.write_record(header).map_err(|e| e.to_string())?;
    let at = |t: Option<Millis>| t.map(rfc3339).unwrap_or_default();
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        out.write_record([
            r.call_sid.clone(),
            r.line.clone(),
            r.caller.clone(),
            r.called.clone(),
            rfc3339(r.started_at),
            at(r.answered_at),
            r.answered_by.clone().unwrap_or_default(),
            at(r.ended_at),
            r.outcome.clone().unwrap_or_default(),
            n(r.wait_secs),
            n(r.talk_secs),
            r.detail.clone().unwrap_or_default(),
        ])
        .map_err(|e| e.to_string())?;
    }
    let bytes = out.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

fn table(rows: &[CallRow]) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let secs = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |s| format!("{s}s"));
    let cells = rows
        .iter()
        .map(|r| {
            [
                rfc3339(r.started_at),
                r.line.clone(),
                r.caller.clone(),
                dash(r.outcome.clone()),
                dash(r.answered_by.clone()),
                secs(r.wait_secs),
                secs(r.talk_secs),
                r.call_sid.clone(),
            ]
        })
        .collect();
    crate::admin_client::table(
        [
            "STARTED", "LINE", "CALLER", "OUTCOME", "BY", "WAIT", "TALK", "CALL",
        ],
        cells,
    )
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// A calendar day, in each line's time zone (its schedule's, else reports.timezone).
    #[arg(long, conflicts_with = "from")]
    pub day: Option<String>,
    /// Or a range: from (RFC 3339, or a duration back from now)...
    #[arg(long)]
    pub from: Option<String>,
    /// ...to [default: now].
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Only this line (its id).
    #[arg(long)]
    pub line: Option<String>,
    /// The report as JSON (as GET /admin/report answers).
    #[arg(long)]
    pub json: bool,
}

/// Runs `switchboard report` at `now`.
pub async fn report(settings: &Settings, args: ReportArgs, now: Millis) -> Result<String, String> {
    use super::report::{render, report, Period, Spec};
    let day = match (&args.day, &args.from) {
        (None, None) => Some(
            jiff::Timestamp::from_millisecond(now as i64)
                .map_err(|e| e.to_string())?
                .to_zoned(settings.reports.timezone.clone())
                .date()
                .to_string(),
        ),
        (day, _) => day.clone(),
    };
    let period = Period::parse(
        day.as_deref(),
        args.from.as_deref(),
        args.to.as_deref(),
        now,
    )?;
    let ledger = Ledger::open(settings)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the call ledger is off (ledger.enabled = false)")?;
    let done = report(&ledger, &Spec::of(settings), &period, args.line.as_deref()).await?;
    match args.json {
        true => serde_json::to_string_pretty(&done)
            .map(|j| j + "\n")
            .map_err(|e| e.to_string()),
        false => Ok(render(&done)),
    }
}
