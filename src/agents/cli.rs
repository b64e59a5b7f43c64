//! `switchboard agents`: the agents' admin API from a terminal, against a running server. Lists
//! who is free, on a call, in wrap-up or away, or sets an agent away or available.

use serde_json::Value;

use crate::admin_client::{self, text, Server};

#[derive(Debug, Clone, clap::Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub server: Server,
    #[command(subcommand)]
    pub action: Option<AgentsAction>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AgentsAction {
    /// Each agent: free, on a call, wrapping up or away (the default).
    List,
    /// Never ring this agent until they are set available again.
    Away(Change),
    /// Ring this agent again (when not on a call or wrapping up).
    Available(Change),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Change {
    /// The agent's id (as `list` shows it).
    pub agent: String,
    /// Who is changing it, as Slack shows it [default: $USER via switchboard agents].
    #[arg(long)]
    pub by: Option<String>,
}

/// Runs the command; returns what to print, or why it failed.
pub async fn run(args: AgentsArgs) -> Result<String, String> {
    let action = args.action.unwrap_or(AgentsAction::List);
    let body = admin_client::send(&args.server, |http, base| match action {
        AgentsAction::List => http.get(format!("{base}/admin/agents")),
        AgentsAction::Away(c) => change(http, base, "away", c),
        AgentsAction::Available(c) => change(http, base, "available", c),
    })
    .await?;
    Ok(table(&admin_client::rows(body, "agents")))
}

fn change(http: &reqwest::Client, base: &str, what: &str, c: Change) -> reqwest::RequestBuilder {
    let agent = admin_client::segment(&c.agent);
    let by = admin_client::by(c.by, "agents");
    http.post(format!("{base}/admin/agents/{agent}/{what}"))
        .json(&serde_json::json!({ "by": by }))
}

/// What an agent is doing, in a word.
fn state(agent: &Value) -> &'static str {
    let flag = |key: &str| agent[key].as_bool();
    match (flag("away"), flag("on_call"), flag("free")) {
        (Some(true), _, _) => "away",
        (_, Some(true), _) => "on call",
        (_, _, Some(true)) => "free",
        (_, _, Some(false)) => "wrap-up",
        _ => "?",
    }
}

/// One row per agent.
fn table(agents: &[Value]) -> String {
    let rows = agents
        .iter()
        .map(|a| {
            [
                text(&a["id"]),
                text(&a["name"]),
                state(a).to_owned(),
                text(&a["busy_until"]),
            ]
        })
        .collect();
    admin_client::table(["AGENT", "NAME", "STATE", "BUSY UNTIL"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_agents_state_reads_away_first_then_on_call_then_free() {
        let a = |away, on_call, free| json!({"away": away, "on_call": on_call, "free": free});
        assert_eq!(state(&a(true, true, false)), "away");
        assert_eq!(state(&a(false, true, false)), "on call");
        assert_eq!(state(&a(false, false, true)), "free");
        assert_eq!(state(&a(false, false, false)), "wrap-up");
        assert_eq!(state(&json!({})), "?");
    }
}
