//! The admin API from a terminal: what `switchboard lines` and `switchboard agents` share (the
//! server to ask, its token, one request, an aligned table).

use serde_json::Value;

/// Which server to ask, and with what token.
#[derive(Debug, Clone, clap::Args)]
pub struct Server {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin token (the server's admin.token).
    #[arg(long, env = "SWITCHBOARD__ADMIN__TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// One admin request: `build` gets a client and the base URL without a trailing slash. Returns
/// the JSON answer, or why it failed (`"401 Unauthorized: …"` for a refusal).
pub(crate) async fn send(
    server: &Server,
    build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> Result<Value, String> {
    let token = server
        .token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or("no admin token: pass --token or set SWITCHBOARD__ADMIN__TOKEN")?;
    let base = server.url.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let res = build(&http, base)
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
    Ok(body)
}

/// The list under `key` in a list answer, or the single object a change answers with.
pub(crate) fn rows(body: Value, key: &str) -> Vec<Value> {
    match body {
        Value::Object(mut map) if map.contains_key(key) => match map.remove(key) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        one => vec![one],
    }
}

/// A path segment, percent-encoded.
pub(crate) fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// Who is making a change, as Slack shows it: `--by`, else `$USER via switchboard <tool>`.
pub(crate) fn by(given: Option<String>, tool: &str) -> String {
    given.unwrap_or_else(|| match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("{user} via switchboard {tool}"),
        _ => format!("switchboard {tool}"),
    })
}

/// A string field, or `-`.
pub(crate) fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_owned()
}

/// Rows under a header, columns aligned, trailing spaces trimmed.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> String {
    let rows: Vec<[String; N]> = std::iter::once(header.map(str::to_owned))
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..N)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_aligns_columns_and_trims_the_last() {
        let t = table(
            ["ID", "NAME", "X"],
            vec![
                ["a".into(), "Ada Lovelace".into(), "-".into()],
                ["grace".into(), "G".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "ID     NAME          X\na      Ada Lovelace  -\ngrace  G\n"
        );
    }

    #[test]
    fn rows_are_the_list_or_the_one_object() {
        assert_eq!(
            rows(json!({"agents": [{"id": 1}, {"id": 2}]}), "agents").len(),
            2
        );
        assert_eq!(
            rows(json!({"id": "ada"}), "agents"),
            vec![json!({"id": "ada"})]
        );
        assert_eq!(segment("a b/c"), "a+b%2Fc");
    }
}
