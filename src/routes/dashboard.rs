//! The dashboard's routes, all behind sign-in (HTTP Basic, or a trusted proxy's header); off
//! (404) when nobody can sign in.
//!
//! | route | what |
//! |---|---|
//! | `GET /dashboard` | the page (`app.css`, `app.js` beside it) |
//! | `GET /dashboard/me` | who is signed in, and their role |
//! | `GET /dashboard/events` | server-sent events: a snapshot, then what changed; heartbeats |
//! | `POST /dashboard/lines/{id}/close\|open` | supervisors: a line closed or opened by hand |
//! | `POST /dashboard/agents/{id}/away\|available` | supervisors: an agent away or back |
//! | `GET /dashboard/recordings/{id}` | a voicemail's archived copy, to play |
//!
//! Actions need the header `X-Switchboard-Action: 1`, which a page of another site cannot send
//! without our consent (no CORS is granted), so a signed-in browser cannot be made to act by one.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::admin::error;
use super::Context;
use crate::dashboard::auth::{Denied, Gate, Who};
use crate::dashboard::feed::{self, Feed};
use crate::dashboard::settings::Role;
use crate::lines::LineControl;

/// The dashboard part of the context (`None`: off).
pub(crate) struct Dashboard {
    pub(crate) gate: Gate,
    pub(crate) feed: Arc<Feed>,
    pub(crate) lines: Arc<LineControl>,
    pub(crate) heartbeat: Duration,
}

const PAGE: &str = include_str!("../dashboard/assets/index.html");
const SCRIPT: &str = include_str!("../dashboard/assets/app.js");
const STYLE: &str = include_str!("../dashboard/assets/app.css");

/// What every dashboard answer carries: never cached, never framed, no referrer.
fn guarded(mut res: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    res
}

/// The signed-in user, or the answer that refuses: 404 when the dashboard is off, 401 (asking
/// for Basic credentials, and saying nothing else) when nobody or the wrong person signs in.
async fn signed_in<'a>(
    req: &HttpRequest,
    cx: &'a Context,
) -> Result<(&'a Dashboard, Who), HttpResponse> {
    let Some(d) = &cx.dashboard else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "the dashboard is off (no dashboard users or proxy configured)",
        ));
    };
    match d.gate.check(req).await {
        Ok(who) => Ok((d, who)),
        Err(Denied::Busy) => Err(guarded(HttpResponse::ServiceUnavailable())
            .insert_header((header::RETRY_AFTER, "2"))
            .content_type("text/plain; charset=utf-8")
            .body("too many sign-ins at once; try again\n")),
        Err(Denied::Missing | Denied::Wrong) => {
            let mut refused = guarded(HttpResponse::Unauthorized());
            // The page's script asks with `X-Switchboard-Page` and gets a bare 401, which the
            // browser hands to it instead of holding the request for a sign-in prompt: the page
            // then tells its user to reload, which prompts. Everything else is challenged (the
            // browser answers a challenge to the page's stylesheet, script and event stream with
            // the credentials the page was opened with).
            if !req.headers().contains_key("x-switchboard-page") {
                refused.insert_header((
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"Switchboard dashboard\", charset=\"UTF-8\"",
                ));
            }
            Err(refused
                .content_type("text/plain; charset=utf-8")
                .body("sign in to see the dashboard\n"))
        }
    }
}

fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    let mut res = guarded(HttpResponse::Ok());
    if content_type.starts_with("text/html") {
        res.insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             media-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'none'",
        ));
    }
    res.content_type(content_type).body(body)
}

pub(super) async fn page(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    match signed_in(&req, &cx).await {
        Ok(_) => asset(PAGE, "text/html; charset=utf-8"),
        Err(refused) => refused,
    }
}

pub(super) async fn script(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    match signed_in(&req, &cx).await {
        Ok(_) => asset(SCRIPT, "text/javascript; charset=utf-8"),
        Err(refused) => refused,
    }
}

pub(super) async fn style(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    match signed_in(&req, &cx).await {
        Ok(_) => asset(STYLE, "text/css; charset=utf-8"),
        Err(refused) => refused,
    }
}

pub(super) async fn me(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    match signed_in(&req, &cx).await {
        Ok((_, who)) => guarded(HttpResponse::Ok()).json(json!({
            "name": who.name,
            "role": who.role.label(),
        })),
        Err(refused) => refused,
    }
}

/// How long a connecting page waits for a frame made after it came.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(3);

pub(super) async fn events(req: HttpRequest, cx: Data<Context>) -> HttpResponse {
    let (d, who) = match signed_in(&req, &cx).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let mut stopping = d.feed.stopping();
    if *stopping.borrow_and_update() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let guard = d.feed.opened();
    let came = std::time::Instant::now();
    let mut frames = d.feed.subscribe();
    // A frame made after this page came: the feed builds one at once for it.
    d.feed.force();
    let fresh = tokio::time::timeout(FIRST_FRAME_WAIT, async {
        frames.wait_for(|f| f.built >= came).await.is_ok()
    })
    .await;
    if fresh.is_err() {
        tracing::warn!("dashboard: no fresh frame in time; the page gets the last one");
    }
    let frame = frames.borrow_and_update().clone();
    let id = d.feed.id.clone();
    // Resuming this feed: only what changed since; else (another replica, a restart) everything.
    let resumed = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit_once('-'))
        .filter(|(feed, _)| *feed == id)
        .and_then(|(_, seq)| seq.parse::<u64>().ok())
        .filter(|seq| *seq <= frame.seq);
    let first = match resumed {
        Some(seen) => feed::changes(&id, &frame, seen),
        None => feed::snapshot(&id, &frame),
    };
    tracing::debug!(user = %who.name, resumed = resumed.is_some(), "dashboard stream opened");
    let mut opening = b"retry: 2000\n\n".to_vec();
    opening.extend_from_slice(&first);
    let state = Stream {
        first: Some(Bytes::from(opening)),
        frames,
        seen: frame.seq,
        stopping,
        heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + d.heartbeat, d.heartbeat),
        id,
        _guard: guard,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        let next = st.next().await?;
        Some((Ok::<_, std::convert::Infallible>(next), st))
    });
    guarded(HttpResponse::Ok())
        .content_type("text/event-stream")
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-transform"),
        ))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// One page's stream.
struct Stream {
    first: Option<Bytes>,
    frames: tokio::sync::watch::Receiver<Arc<feed::Frame>>,
    seen: u64,
    stopping: tokio::sync::watch::Receiver<bool>,
    heartbeat: tokio::time::Interval,
    id: String,
    _guard: feed::StreamGuard,
}

impl Stream {
    /// What to send next; `None` ends the stream (the server is stopping).
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            tokio::select! {
                changed = self.frames.changed() => {
                    changed.ok()?;
                    let frame = self.frames.borrow_and_update().clone();
                    // The usual case, a page that saw the frame before: the shared bytes.
                    let out = match self.seen + 1 == frame.seq {
                        true => frame.delta.clone(),
                        false => feed::changes(&self.id, &frame, self.seen),
                    };
                    self.seen = frame.seq;
                    if !out.is_empty() {
                        return Some(out);
                    }
                }
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(b": heartbeat\n\n")),
                _ = self.stopping.changed() => return None,
            }
        }
    }
}

/// The signed-in supervisor, for an action; else the refusal.
async fn supervisor<'a>(
    req: &HttpRequest,
    cx: &'a Context,
) -> Result<(&'a Dashboard, Who), HttpResponse> {
    let (d, who) = signed_in(req, cx).await?;
    let asked = req
        .headers()
        .get("x-switchboard-action")
        .is_some_and(|v| v.as_bytes() == b"1");
    if !asked {
        return Err(error(
            StatusCode::FORBIDDEN,
            "actions come from the dashboard page (X-Switchboard-Action: 1)",
        ));
    }
    if who.role != Role::Supervisor {
        tracing::warn!(user = %who.name, path = req.path(), "dashboard action refused: not a supervisor");
        return Err(error(
            StatusCode::FORBIDDEN,
            "only supervisors may change lines and agents",
        ));
    }
    Ok((d, who))
}

pub(super) async fn line_close(
    req: HttpRequest,
    id: Path<String>,
    cx: Data<Context>,
) -> HttpResponse {
    line(req, id, cx, false).await
}

pub(super) async fn line_open(
    req: HttpRequest,
    id: Path<String>,
    cx: Data<Context>,
) -> HttpResponse {
    line(req, id, cx, true).await
}

async fn line(req: HttpRequest, id: Path<String>, cx: Data<Context>, open: bool) -> HttpResponse {
    let (d, who) = match supervisor(&req, &cx).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let by = format!("{} (dashboard)", who.name);
    let done = match open {
        true => d.lines.open(&id, None, &by).await,
        false => d.lines.close(&id, None, &by).await,
    };
    match done {
        Ok(view) => {
            d.feed.force();
            guarded(HttpResponse::Ok()).json(view)
        }
        Err(e) => super::admin::line_refused(e),
    }
}

/// `POST /dashboard/calls/{sid}/participants/{who}/{action}`: a supervisor's live control.
pub(super) async fn call_participant(
    req: HttpRequest,
    path: Path<(String, String, String)>,
    cx: Data<Context>,
) -> HttpResponse {
    let (sid, label, action) = path.into_inner();
    let control = super::control::participant_action(&action, &label);
    live_control(req, &sid, cx, control).await
}

/// `POST /dashboard/calls/{sid}/recording/{start|stop}`.
pub(super) async fn call_recording(
    req: HttpRequest,
    path: Path<(String, String)>,
    cx: Data<Context>,
) -> HttpResponse {
    let (sid, action) = path.into_inner();
    let control = super::control::recording_action(&action);
    live_control(req, &sid, cx, control).await
}

/// `POST /dashboard/calls/{sid}/participants` (`{"number", "name"}` or `{"agent"}`): call
/// someone into the room.
pub(super) async fn call_add(
    req: HttpRequest,
    sid: Path<String>,
    body: actix_web::web::Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    let control = match serde_json::from_slice::<super::control::Add>(&body) {
        Ok(add) => super::control::added(&cx, &add),
        Err(e) => Err(super::control::Refused(
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("the body must be JSON {{\"number\", \"name\"}} or {{\"agent\"}}: {e}"),
        )),
    };
    live_control(req, &sid, cx, control).await
}

/// A supervisor's action on conference call `sid` (a bad request is answered only to a
/// supervisor), said as theirs; the pages are updated at once.
async fn live_control(
    req: HttpRequest,
    sid: &str,
    cx: Data<Context>,
    control: Result<crate::call::conference::Control, super::control::Refused>,
) -> HttpResponse {
    let (d, who) = match supervisor(&req, &cx).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let control = match control {
        Ok(control) => control,
        Err(refused) => return refused.respond(),
    };
    let by = format!("{} (dashboard)", who.name);
    let answer = super::control::act(&cx, sid, control, &by).await;
    d.feed.force();
    answer
}

pub(super) async fn agent_away(
    req: HttpRequest,
    id: Path<String>,
    cx: Data<Context>,
) -> HttpResponse {
    agent(req, id, cx, true).await
}

pub(super) async fn agent_available(
    req: HttpRequest,
    id: Path<String>,
    cx: Data<Context>,
) -> HttpResponse {
    agent(req, id, cx, false).await
}

async fn agent(req: HttpRequest, id: Path<String>, cx: Data<Context>, away: bool) -> HttpResponse {
    let (d, who) = match supervisor(&req, &cx).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let by = format!("{} (dashboard)", who.name);
    match cx.service.set_away(&id, away, &by).await {
        Ok(Some((agent, _))) => {
            d.feed.force();
            guarded(HttpResponse::Ok()).json(json!({ "id": &*agent.id, "away": away }))
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such agent"),
        Err(e) => super::admin::presence_unsaved(e),
    }
}

pub(super) async fn recording(
    req: HttpRequest,
    id: Path<String>,
    cx: Data<Context>,
) -> HttpResponse {
    let who = match signed_in(&req, &cx).await {
        Ok((_, who)) => who,
        Err(refused) => return refused,
    };
    let Some(archive) = &cx.recordings else {
        return error(StatusCode::NOT_FOUND, "the recordings archive is off");
    };
    // Only voicemails are played from the page.
    if !id.ends_with("-voicemail") {
        return error(StatusCode::NOT_FOUND, "no such voicemail");
    }
    tracing::info!(user = %who.name, recording = %id, "voicemail played from the dashboard");
    super::recordings::archived(&req, archive, &id).await
}
