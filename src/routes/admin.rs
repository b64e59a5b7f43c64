//! The admin API: lines' state, and opening or closing them by hand. Off (404) unless
//! `admin.token` is set; every request needs `Authorization: Bearer <token>` (401 otherwise,
//! logged without the token). Bodies are optional JSON: `{"until": "...", "by": "..."}`, where
//! `until` is an RFC 3339 instant (`2026-11-23T17:00:00-05:00`) or a duration from now (`2h`,
//! `90m`, `1h30m`).

use actix_web::http::header;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Context;
use crate::lines::{ControlError, LineControl};
use crate::time::Millis;

/// The admin API's token and what it steers.
pub(crate) struct Admin {
    pub(crate) token: SecretString,
    pub(crate) lines: std::sync::Arc<LineControl>,
    /// The call history (`None`: `ledger.enabled = false`).
    pub(crate) ledger: Option<crate::ledger::Ledger>,
    /// Privacy mode: caller numbers are masked in what the API shows.
    pub(crate) mask_callers: bool,
    /// The lines reports cover, their time zones and counting rules.
    pub(crate) report: crate::ledger::report::Spec,
}

/// The optional body of a change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    until: Option<String>,
    by: Option<String>,
}

pub(super) fn error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

/// Why an admin request is refused.
pub(super) enum Refusal {
    /// No token configured: the admin API is off.
    Off,
    /// No token, or the wrong one.
    Unauthorized,
}

impl Refusal {
    pub(super) fn respond(self) -> HttpResponse {
        match self {
            Refusal::Off => error(
                actix_web::http::StatusCode::NOT_FOUND,
                "the admin API is off (set admin.token)",
            ),
            Refusal::Unauthorized => HttpResponse::Unauthorized()
                .insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"switchboard admin\"",
                ))
                .json(json!({ "error": "missing or wrong bearer token" })),
        }
    }
}

/// The admin part of the context when the request may use it.
pub(super) fn authorized<'a>(req: &HttpRequest, cx: &'a Context) -> Result<&'a Admin, Refusal> {
    let Some(admin) = &cx.admin else {
        return Err(Refusal::Off);
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Compared as digests, so the time taken says nothing about the token.
    let digest = |s: &str| Sha256::digest(s.as_bytes());
    let ok = given.is_some_and(|g| digest(g) == digest(admin.token.expose_secret()));
    if !ok {
        tracing::warn!(
            path = req.path(),
            peer = ?req.peer_addr(),
            token_given = given.is_some(),
            "admin request refused: missing or wrong bearer token"
        );
        return Err(Refusal::Unauthorized);
    }
    Ok(admin)
}

/// An optional JSON body (empty: the default), or why it is not `shape`.
fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    shape: &str,
) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("the body must be JSON {shape}: {e}"))
}

/// `until` as an instant: RFC 3339, or a duration from `now`.
fn until(text: &str, now: Millis) -> Result<Millis, String> {
    use crate::time::{instant, BadInstant, Toward};
    instant(text, now, Toward::Future).map_err(|e| match e {
        BadInstant::BeforeEpoch => "is before 1970".to_owned(),
        BadInstant::Unreadable => format!(
            "`until` must be an RFC 3339 instant (2026-11-23T17:00:00-05:00) or a duration (2h, 90m), not `{}`",
            text.trim().chars().take(40).collect::<String>()
        ),
    })
}

/// `by` as shown in Slack: printable, at most 64 characters; "the admin API" when not given.
fn by(given: Option<&str>) -> String {
    let clean: String = given
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    match clean.trim() {
        "" => "the admin API".to_owned(),
        name => name.to_owned(),
    }
}

pub(super) async fn lines(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    let admin = match authorized(&req, &cx) {
        Ok(a) => a,
        Err(refused) => return refused.respond(),
    };
    match admin.lines.list().await {
        Ok(lines) => HttpResponse::Ok().json(json!({ "lines": lines })),
        Err(e) => {
            tracing::error!(error = %e, "line overrides unreadable");
            error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "line state unavailable",
            )
        }
    }
}

pub(super) async fn close(
    req: HttpRequest,
    id: Path<String>,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    change(req, id, body, cx, false).await
}

pub(super) async fn open(
    req: HttpRequest,
    id: Path<String>,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    change(req, id, body, cx, true).await
}

async fn change(
    req: HttpRequest,
    id: Path<String>,
    body: Bytes,
    cx: Data<Context>,
    open: bool,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let admin = match authorized(&req, &cx) {
        Ok(a) => a,
        Err(refused) => return refused.respond(),
    };
    let change: Change = match optional_json(&body, "{\"until\": ..., \"by\": ...}") {
        Ok(c) => c,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let until = match change.until.as_deref().map(|u| until(u, cx.clock.now_ms())) {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(why)) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let by = by(change.by.as_deref());
    let done = match open {
        true => admin.lines.open(&id, until, &by).await,
        false => admin.lines.close(&id, until, &by).await,
    };
    match done {
        Ok(view) => HttpResponse::Ok().json(view),
        Err(e) => line_refused(e),
    }
}

/// The answer to a line change that was refused (the admin API's and the dashboard's).
pub(super) fn line_refused(e: ControlError) -> HttpResponse {
    use actix_web::http::StatusCode;
    match e {
        ControlError::UnknownLine(_) => error(StatusCode::NOT_FOUND, "no such line"),
        e @ ControlError::Past => error(StatusCode::BAD_REQUEST, &e.to_string()),
        ControlError::Store(e) => {
            tracing::error!(error = %e, "line override not saved");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the change could not be saved",
            )
        }
    }
}

/// One agent as `GET /admin/agents` shows them.
fn agent_view(
    agent: &crate::domain::Agent,
    p: &crate::call::routing::Presence,
    now: Millis,
) -> serde_json::Value {
    let free_at = (p.busy_until > now).then(|| crate::lines::rfc3339(p.busy_until));
    json!({
        "id": &*agent.id,
        "name": &*agent.name,
        "away": p.away,
        "on_call": p.on_call.is_some() && p.busy_until > now,
        "busy_until": free_at,
        "free": p.free(now),
    })
}

pub(super) async fn agents(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    if let Err(refused) = authorized(&req, &cx) {
        return refused.respond();
    }
    let now = cx.clock.now_ms();
    match cx.service.agents_now().await {
        Ok(list) => {
            let agents: Vec<_> = list.iter().map(|(a, p)| agent_view(a, p, now)).collect();
            HttpResponse::Ok().json(json!({ "agents": agents }))
        }
        Err(e) => {
            tracing::error!(error = %e, "agent presence unreadable");
            error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "agent state unavailable",
            )
        }
    }
}

pub(super) async fn away(
    req: HttpRequest,
    id: Path<String>,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    presence(req, id, body, cx, true).await
}

pub(super) async fn available(
    req: HttpRequest,
    id: Path<String>,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    presence(req, id, body, cx, false).await
}

/// The optional body of an agent change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByWhom {
    by: Option<String>,
}

async fn presence(
    req: HttpRequest,
    id: Path<String>,
    body: Bytes,
    cx: Data<Context>,
    away: bool,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    if let Err(refused) = authorized(&req, &cx) {
        return refused.respond();
    }
    let whom: ByWhom = match optional_json(&body, "{\"by\": ...}") {
        Ok(c) => c,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let by = by(whom.by.as_deref());
    match cx.service.set_away(&id, away, &by).await {
        Ok(Some((agent, p))) => HttpResponse::Ok().json(agent_view(&agent, &p, cx.clock.now_ms())),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such agent"),
        Err(e) => presence_unsaved(e),
    }
}

/// `GET /admin/calls/{sid}/participants`: a conference call's room and who is in it.
pub(super) async fn room(req: HttpRequest, sid: Path<String>, cx: Data<Context>) -> HttpResponse {
    if let Err(refused) = authorized(&req, &cx) {
        return refused.respond();
    }
    super::control::room(&cx, &sid).await
}

/// `POST /admin/calls/{sid}/participants/{label}/{action}`: mute, unmute, hold, resume, remove.
pub(super) async fn participant(
    req: HttpRequest,
    path: Path<(String, String, String)>,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    let (sid, who, action) = path.into_inner();
    let control = super::control::participant_action(&action, &who);
    live_control(req, &sid, &body, cx, control).await
}

/// `POST /admin/calls/{sid}/recording/{start|stop}`.
pub(super) async fn recording(
    req: HttpRequest,
    path: Path<(String, String)>,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    let (sid, action) = path.into_inner();
    let control = super::control::recording_action(&action);
    live_control(req, &sid, &body, cx, control).await
}

/// An operator's action on conference call `sid` (a bad action name is answered only to a
/// request with the token), the body's optional `by` saying who.
async fn live_control(
    req: HttpRequest,
    sid: &str,
    body: &[u8],
    cx: Data<Context>,
    control: Result<crate::call::conference::Control, super::control::Refused>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    if let Err(refused) = authorized(&req, &cx) {
        return refused.respond();
    }
    let whom: ByWhom = match optional_json(body, "{\"by\": ...}") {
        Ok(c) => c,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    match control {
        Ok(control) => super::control::act(&cx, sid, control, &by(whom.by.as_deref())).await,
        Err(refused) => refused.respond(),
    }
}

/// `POST /admin/calls/{sid}/participants`: call someone into the room.
pub(super) async fn add(
    req: HttpRequest,
    sid: Path<String>,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    if let Err(refused) = authorized(&req, &cx) {
        return refused.respond();
    }
    let add: super::control::Add = match optional_json(&body, "{\"agent\": ...}") {
        Ok(a) => a,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    match super::control::added(&cx, &add) {
        Ok(control) => super::control::act(&cx, &sid, control, &by(add.by.as_deref())).await,
        Err(refused) => refused.respond(),
    }
}

/// The answer when an agent's presence could not be written (the admin API's and the
/// dashboard's).
pub(super) fn presence_unsaved(e: crate::call::StoreError) -> HttpResponse {
    tracing::error!(error = %e, "agent presence not saved");
    error(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        "the change could not be saved",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_instants_and_durations() {
        let now = 1_795_262_400_000; // 2026-11-21T12:00:00Z
        assert_eq!(until("2026-11-21T13:00:00Z", now), Ok(now + 3_600_000));
        assert_eq!(until("2026-11-21T08:00:00-05:00", now), Ok(now + 3_600_000));
        assert_eq!(until("2h", now), Ok(now + 7_200_000));
        assert_eq!(until("1h 30m", now), Ok(now + 5_400_000));
        assert!(until("tomorrow", now).is_err());
        assert!(until("-2h", now).is_err());
    }

    #[test]
    fn by_is_printable_and_short() {
        assert_eq!(by(None), "the admin API");
        assert_eq!(by(Some("  ")), "the admin API");
        assert_eq!(by(Some("ops\u{7}\nteam")), "opsteam");
        assert_eq!(by(Some(&"x".repeat(100))).len(), 64);
    }
}
