//! The call history over the admin API: `GET /admin/calls` (filtered, newest first) and
//! `GET /admin/calls/{sid}` (one call with its events). Same token as the rest of `/admin`;
//! caller numbers masked under privacy mode, whatever the ledger keeps.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::{authorized, error};
use super::Context;
use crate::ledger::{instant, shown, CallQuery, CallRow, Ledger};
use crate::lines::rfc3339;
use crate::time::Millis;

/// `?from=&to=&line=&outcome=&limit=`: instants as RFC 3339, or durations back from now (`24h`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filter {
    from: Option<String>,
    to: Option<String>,
    line: Option<String>,
    outcome: Option<String>,
    limit: Option<u32>,
}

/// At most this many calls per answer.
const MAX_LIMIT: u32 = 1000;

impl Filter {
    fn query(&self, now: Millis) -> Result<CallQuery, String> {
        let at = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| instant(t, now).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        Ok(CallQuery {
            from: at("from", &self.from)?,
            to: at("to", &self.to)?,
            line: self.line.clone(),
            outcome: self.outcome.clone(),
            limit: self.limit.unwrap_or(100).clamp(1, MAX_LIMIT),
        })
    }
}

/// One call as the API shows it.
pub(crate) fn view(row: &CallRow, mask: bool) -> Value {
    let when = |t: Option<Millis>| t.map(rfc3339);
    let row = shown(row, mask);
    json!({
        "call_sid": row.call_sid,
        "line": row.line,
        "caller": row.caller,
        "called": row.called,
        "started_at": rfc3339(row.started_at),
        "answered_at": when(row.answered_at),
        "answered_by": row.answered_by,
        "ended_at": when(row.ended_at),
        "outcome": row.outcome,
        "wait_secs": row.wait_secs,
        "talk_secs": row.talk_secs,
        "detail": row.detail,
    })
}

/// The ledger and whether to mask callers, or the answer that refuses the request.
fn ledger_of<'a>(
    req: &HttpRequest,
    cx: &'a Context,
) -> Result<(&'a Ledger, &'a super::Admin), Box<HttpResponse>> {
    let admin = authorized(req, cx).map_err(|r| Box::new(r.respond()))?;
    match &admin.ledger {
        Some(ledger) => Ok((ledger, admin)),
        None => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "the call ledger is off (ledger.enabled = false)",
        ))),
    }
}

fn unavailable(e: &sqlx::Error) -> HttpResponse {
    tracing::error!(error = %e, "call ledger unreadable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the call ledger is unavailable",
    )
}

pub(super) async fn calls(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    let (ledger, mask) = match ledger_of(&req, &cx) {
        Ok((ledger, admin)) => (ledger, admin.mask_callers),
        Err(refused) => return *refused,
    };
    let filter = match Query::<Filter>::from_query(req.query_string()) {
        Ok(f) => f.into_inner(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let query = match filter.query(cx.clock.now_ms()) {
        Ok(q) => q,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    match ledger.calls(&query).await {
        Ok(rows) => {
            let calls: Vec<Value> = rows.iter().map(|r| view(r, mask)).collect();
            HttpResponse::Ok().json(json!({ "calls": calls }))
        }
        Err(e) => unavailable(&e),
    }
}

pub(super) async fn call(req: HttpRequest, sid: Path<String>, cx: Data<Context>) -> HttpResponse {
    let (ledger, mask) = match ledger_of(&req, &cx) {
        Ok((ledger, admin)) => (ledger, admin.mask_callers),
        Err(refused) => return *refused,
    };
    let row = match ledger.call(&sid).await {
        Ok(Some(row)) => row,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => return unavailable(&e),
    };
    match ledger.events(&sid).await {
        Ok(events) => {
            let mut body = view(&row, mask);
            let events: Vec<Value> = events
                .iter()
                .map(|e| json!({ "at": rfc3339(e.at), "kind": e.kind, "data": e.data }))
                .collect();
            body["events"] = Value::Array(events);
            HttpResponse::Ok().json(body)
        }
        Err(e) => unavailable(&e),
    }
}

/// `?day=2026-11-22` (each line's own day) or `?from=&to=`, and `&line=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    day: Option<String>,
    from: Option<String>,
    to: Option<String>,
    line: Option<String>,
}

pub(super) async fn report(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    let (ledger, admin) = match ledger_of(&req, &cx) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let q = match Query::<ReportQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let now = cx.clock.now_ms();
    let period = match crate::ledger::report::Period::parse(
        q.day.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        now,
    ) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    match crate::ledger::report::report(ledger, &admin.report, &period, q.line.as_deref()).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(why) if why.starts_with("no line") => error(StatusCode::NOT_FOUND, &why),
        Err(why) => {
            tracing::error!(error = %why, "report failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the call ledger is unavailable",
            )
        }
    }
}
