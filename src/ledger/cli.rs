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

#[derive(Debug, Clone, clap::Args)]
pub struct RecordingsArgs {
    #[command(subcommand)]
    pub action: RecordingsAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RecordingsAction {
    /// The recordings received in a period: state, size, SHA-256.
    List(Window),
    /// Copies them into a directory as <CallSid>-<kind>.<ext>, checking each against its
    /// SHA-256; one not archived (yet) is fetched from the provider's link while it still works.
    Download {
        #[command(flatten)]
        window: Window,
        /// Where to put them (created if missing).
        #[arg(long, default_value = "recordings")]
        to: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Window {
    /// Received since: RFC 3339, or a duration back from now.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Received before [default: now].
    #[arg(long)]
    pub until: Option<String>,
}

/// `switchboard recordings …` at `now`.
pub async fn recordings(
    settings: &Settings,
    args: RecordingsArgs,
    now: Millis,
) -> Result<String, String> {
    let window = match &args.action {
        RecordingsAction::List(w) | RecordingsAction::Download { window: w, .. } => w,
    };
    let from = instant(&window.since, now).map_err(|e| format!("--since {e}"))?;
    let to = match &window.until {
        Some(t) => instant(t, now).map_err(|e| format!("--until {e}"))?,
        None => now.saturating_add(1),
    };
    let ledger = Ledger::open(settings)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the call ledger is off (ledger.enabled = false)")?;
    let rows = ledger
        .recordings(from, to)
        .await
        .map_err(|e| e.to_string())?;
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    match args.action {
        RecordingsAction::List(_) => {
            let cells = rows
                .iter()
                .map(|r| {
                    [
                        r.call_sid.clone(),
                        r.kind.clone(),
                        r.state.clone(),
                        dash(r.bytes.map(|b| b.to_string())),
                        dash(r.sha256.as_ref().map(|h| h[..16.min(h.len())].to_owned())),
                        rfc3339(r.received_at),
                        dash(r.delete_after.map(rfc3339)),
                    ]
                })
                .collect();
            Ok(crate::admin_client::table(
                [
                    "CALL",
                    "KIND",
                    "STATE",
                    "BYTES",
                    "SHA256",
                    "RECEIVED",
                    "DELETE AFTER",
                ],
                cells,
            ))
        }
        RecordingsAction::Download { to, .. } => {
            std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
            let store = super::store::Store::open(settings)?;
            let mut cells = Vec::new();
            for r in &rows {
                let done = copy_out(r, &store, &to).await;
                let (file, what) = match done {
                    Ok((file, what)) => (file, what),
                    Err(why) => ("-".to_owned(), why),
                };
                cells.push([r.call_sid.clone(), r.kind.clone(), file, what]);
            }
            Ok(crate::admin_client::table(
                ["CALL", "KIND", "FILE", "DONE"],
                cells,
            ))
        }
    }
}

/// Copies one recording out of the archive (checked) or, if not archived, from the provider.
async fn copy_out(
    r: &super::RecordingRow,
    store: &super::store::Store,
    to: &std::path::Path,
) -> Result<(String, String), String> {
    use sha2::{Digest, Sha256};
    let safe: String = r
        .call_sid
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '_',
            },
        )
        .collect();
    let (bytes, ext, what) = match (r.state.as_str(), r.path.as_deref()) {
        ("archived", Some(path)) => {
            if !super::archive::kept_in(store, r) {
                let kept = r.store.as_deref().unwrap_or("local");
                return Err(format!("kept in {kept}, not in the configured store"));
            }
            let got = store.read(path, None).await.map_err(|e| e.to_string())?;
            let bytes = got.bytes().await.map_err(|e| e.to_string())?.to_vec();
            let sha = super::archive::hex(&Sha256::digest(&bytes));
            if Some(&sha) != r.sha256.as_ref() {
                return Err(format!("SHA-256 mismatch: the archived file is {sha}"));
            }
            let ext = std::path::Path::new(path)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("bin")
                .to_owned();
            (bytes, ext, "copied, SHA-256 checked".to_owned())
        }
        ("deleted", _) => return Err("deleted (retention)".into()),
        _ => {
            let res = reqwest::Client::new()
                .get(&r.provider_url)
                .timeout(std::time::Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "not archived; the provider's link failed: {}",
                        e.without_url()
                    )
                })?;
            if !res.status().is_success() {
                return Err(format!(
                    "not archived; the provider's link answered {}",
                    res.status()
                ));
            }
            let bytes = res.bytes().await.map_err(|e| e.to_string())?.to_vec();
            (
                bytes,
                "mp3".to_owned(),
                "from the provider (not archived)".to_owned(),
            )
        }
    };
    let name = format!("{safe}-{}.{ext}", r.kind);
    std::fs::write(to.join(&name), &bytes).map_err(|e| e.to_string())?;
    Ok((name, what))
}
