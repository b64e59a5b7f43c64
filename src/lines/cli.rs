//! `switchboard lines`: the admin API from a terminal, against a running server. Lists the
//! lines with their state and why, or opens and closes one.

use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct LinesArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin token (the server's admin.token).
    #[arg(long, env = "SWITCHBOARD__ADMIN__TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
    let token = args
        .token
        .filter(|t| !t.trim().is_empty())
        .ok_or("no admin token: pass --token or set SWITCHBOARD__ADMIN__TOKEN")?;
    let base = args.url.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let request = match args.action.unwrap_or(LinesAction::List) {
        LinesAction::List => http.get(format!("{base}/admin/lines")),
        LinesAction::Close(c) => change(&http, base, "close", c),
        LinesAction::Open(c) => change(&http, base, "open", c),
    };
    let res = request
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body["error"].as_str().unwrap_or("no reason given");
        return Err(format!("{status}: {why}"));
    }
    let lines = match body.get("lines") {
        Some(Value::Array(lines)) => lines.clone(),
        _ => vec![body],
    };
    Ok(table(&lines))
}

fn change(http: &reqwest::Client, base: &str, what: &str, c: Change) -> reqwest::RequestBuilder {
    let by = c.by.unwrap_or_else(|| match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("{user} via switchboard lines"),
        _ => "switchboard lines".to_owned(),
    });
    let line: String = url::form_urlencoded::byte_serialize(c.line.as_bytes()).collect();
    http.post(format!("{base}/admin/lines/{line}/{what}"))
        .json(&serde_json::json!({ "until": c.until, "by": by }))
}

/// One row per line, columns aligned.
fn table(lines: &[Value]) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut rows = vec![["LINE", "NAME", "STATE", "WHY", "UNTIL", "BY"].map(str::to_owned)];
    for l in lines {
        let why = text(&l["why"]).replace('_', " ");
        let state = match l["open"].as_bool() {
            Some(true) => "open",
            Some(false) => "closed",
            None => "?",
        };
        rows.push([
            text(&l["id"]),
            text(&l["name"]),
            state.to_owned(),
            why,
            text(&l["until"]),
            text(&l["override"]["by"]),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
