//! `switchboard lines`: the admin API from a terminal, against a running server. Lists the
//! lines with their state and why, or opens and closes one.

use serde_json::Value;

use crate::admin_client::{self, text, Server};

#[derive(Debug, Clone, clap::Args)]
pub struct LinesArgs {
    #[command(flatten)]
    pub server: Server,
    #[command(subcommand)]
    pub action: Option<LinesAction>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum LinesAction {
    /// Each line: open or closed, why, until when (the default).
    List,
    /// Close a line now: until `--until`, or until its schedule next opens.
    Close(Change),
    /// Open a line: lifts a closure, or holds a closed line open.
    Open(Change),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Change {
    /// The line's id.
    pub line: String,
    /// An RFC 3339 instant (2026-11-23T17:00:00-05:00) or a duration from now (2h, 90m).
    #[arg(long)]
    pub until: Option<String>,
    /// Who is changing it, as Slack shows it [default: $USER via switchboard lines].
    #[arg(long)]
    pub by: Option<String>,
}

/// Runs the command; returns what to print, or why it failed.
pub async fn run(args: LinesArgs) -> Result<String, String> {
    let action = args.action.unwrap_or(LinesAction::List);
    let body = admin_client::send(&args.server, |http, base| match action {
        LinesAction::List => http.get(format!("{base}/admin/lines")),
        LinesAction::Close(c) => change(http, base, "close", c),
        LinesAction::Open(c) => change(http, base, "open", c),
    })
    .await?;
    Ok(table(&admin_client::rows(body, "lines")))
}

fn change(http: &reqwest::Client, base: &str, what: &str, c: Change) -> reqwest::RequestBuilder {
    let line = admin_client::segment(&c.line);
    let by = admin_client::by(c.by, "lines");
    http.post(format!("{base}/admin/lines/{line}/{what}"))
        .json(&serde_json::json!({ "until": c.until, "by": by }))
}

/// One row per line.
fn table(lines: &[Value]) -> String {
    let rows = lines
        .iter()
        .map(|l| {
            let state = match l["open"].as_bool() {
                Some(true) => "open",
                Some(false) => "closed",
                None => "?",
            };
            [
                text(&l["id"]),
                text(&l["name"]),
                state.to_owned(),
                text(&l["why"]).replace('_', " "),
                text(&l["until"]),
                text(&l["override"]["by"]),
            ]
        })
        .collect();
    admin_client::table(["LINE", "NAME", "STATE", "WHY", "UNTIL", "BY"], rows)
}
