//! Thin HTTP handlers: parse → apply → render. The decisions live in [`crate::call::transition`].
//!
//! | route | what |
//! |---|---|
//! | `GET`/`POST /texml/inbound` | voice URL: greeting, then ring every agent |
//! | `GET`/`POST /texml/dial?round=N` | Dial action: after-call, next round, or voicemail |
//! | `GET`/`POST /texml/voicemail` | Record action: goodbye |
//! | `POST /texml/status` | status callbacks of the call and of every dialled leg |
//! | `POST /texml/recording?kind=voicemail\|conversation` | recording status callbacks |
//! | `GET /audio/{file}` | prompts from the audio folder |
//! | `GET /healthz`, `GET /readyz` | alive; ready to take calls |

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes, Data};
use actix_web::{guard, HttpRequest, HttpResponse};

use futures_util::FutureExt;
use tracing::Instrument;

use crate::call::{Event, StoreError};
use crate::domain::CallSid;
use crate::outbound::Envelope;
use crate::signature::{Mode, Signed};
use crate::startup::AppState;
use crate::webhook::{self, BadRequest, Params};

pub fn configure(cfg: &mut web::ServiceConfig) {
    let get_or_post = || guard::Any(guard::Get()).or(guard::Post());
    cfg.route(
        "/texml/inbound",
        web::route().guard(get_or_post()).to(inbound),
    )
    .route("/texml/dial", web::route().guard(get_or_post()).to(dial))
    .route(
        "/texml/voicemail",
        web::route().guard(get_or_post()).to(voicemail),
    )
    .route("/texml/status", web::post().to(status))
    .route("/texml/recording", web::post().to(recording))
    .route("/telnyx/events", web::post().to(telnyx_events))
    .route("/audio/{file}", web::get().to(audio))
    .route("/audio/{file}", web::head().to(audio))
    .route("/healthz", web::get().to(healthz))
    .route("/readyz", web::get().to(readyz))
    .route("/metrics", web::get().to(metrics))
    .default_service(web::to(not_found));
}

/// The requests the provider waits on for a document.
#[derive(Clone, Copy, Debug)]
enum Voice {
    Inbound,
    Dial,
    RecordEnded,
}

async fn inbound(req: HttpRequest, body: Bytes, state: Data<AppState>) -> HttpResponse {
    voice(Voice::Inbound, &req, &body, &state).await
}

async fn dial(req: HttpRequest, body: Bytes, state: Data<AppState>) -> HttpResponse {
    voice(Voice::Dial, &req, &body, &state).await
}

async fn voicemail(req: HttpRequest, body: Bytes, state: Data<AppState>) -> HttpResponse {
    voice(Voice::RecordEnded, &req, &body, &state).await
}

/// The provider's fields: the query string of a GET (Telnyx's default voice method), the form
/// body of a POST (or its query string when the body is empty).
fn provider_params(req: &HttpRequest, body: &[u8]) -> Result<Params, BadRequest> {
    if req.method() == Method::GET || body.is_empty() {
        Params::parse(req.query_string().as_bytes())
    } else {
        Params::parse(body)
    }
}

/// Our own query parameters (`round`, `kind`), as we wrote them into the document.
fn own_params(req: &HttpRequest) -> Params {
    Params::parse(req.query_string().as_bytes()).unwrap_or_default()
}

fn xml(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/xml; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// Checks the webhook's signature before anything else reads it; returns the refusal, if any. A
/// refusal is counted, logged without the body, and answered 403: no state changes, nothing sent.
fn refusal(req: &HttpRequest, body: &[u8], state: &AppState) -> Option<HttpResponse> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        header: &header,
        path: req.path(),
        query: req.query_string(),
        body,
        form: req.method() == Method::POST && !is_json(req),
    };
    let why = state.verifier.check(&signed, state.clock.now_ms()).err()?;
    let total = state
        .counters
        .rejected_signatures
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    if state.verifier.effective_mode() == Mode::Log {
        tracing::warn!(route = req.path(), %why, rejected_signatures_total = total, "webhook signature not valid (log mode: let through)");
        return None;
    }
    tracing::warn!(route = req.path(), %why, rejected_signatures_total = total, "webhook refused: signature not valid");
    Some(
        HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(format!("forbidden: {why}\n")),
    )
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

async fn voice(kind: Voice, req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    if let Some(refused) = refusal(req, body, state) {
        return refused;
    }
    let parsed = provider_params(req, body).and_then(|p| match kind {
        Voice::Inbound => webhook::incoming(&p),
        Voice::Dial => webhook::dial_ended(&p, &own_params(req)),
        Voice::RecordEnded => webhook::record_ended(&p),
    });
    let (sid, event) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(route = req.path(), error = %e, "bad voice request refused");
            // Still a valid document: whoever reads it hears an apology, not dead air.
            return xml(StatusCode::BAD_REQUEST, state.renderer.fallback().to_vec());
        }
    };
    let span = tracing::info_span!("call", call_sid = %sid);
    // The call path must always answer with a document: a store failure or even a panic is turned
    // into the apology document (sorry, then take a message), never dead air.
    let answered = AssertUnwindSafe(async {
        let reply = state.handle(&sid, &event).await?;
        Ok::<_, StoreError>(state.renderer.render(&reply))
    })
    .catch_unwind()
    .instrument(span.clone())
    .await;
    let _entered = span.enter();
    match answered {
        Ok(Ok(body)) => xml(StatusCode::OK, body),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "call state unavailable; answered with the apology document");
            xml(StatusCode::OK, state.renderer.fallback().to_vec())
        }
        Err(_) => {
            tracing::error!("internal error on the call path; answered with the apology document");
            xml(StatusCode::OK, state.renderer.fallback().to_vec())
        }
    }
}

async fn callback(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    parse: impl FnOnce(&Params, &Params) -> Result<(CallSid, Event), BadRequest>,
) -> HttpResponse {
    if let Some(refused) = refusal(req, body, state) {
        return refused;
    }
    let parsed = provider_params(req, body).and_then(|p| parse(&p, &own_params(req)));
    let (sid, event) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(route = req.path(), error = %e, "bad callback refused");
            return bad_request(&e);
        }
    };
    let span = tracing::info_span!("call", call_sid = %sid);
    let handled = AssertUnwindSafe(state.handle(&sid, &event))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    match handled {
        Ok(Ok(_)) => HttpResponse::NoContent().finish(),
        // The provider retries a 5xx: nothing is lost while the store is away.
        Ok(Err(e)) => {
            tracing::error!(error = %e, "call state unavailable; the provider will retry");
            HttpResponse::ServiceUnavailable().finish()
        }
        Err(_) => {
            tracing::error!("internal error while applying a callback");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn status(req: HttpRequest, body: Bytes, state: Data<AppState>) -> HttpResponse {
    callback(&req, &body, &state, |p, _| webhook::status(p)).await
}

async fn recording(req: HttpRequest, body: Bytes, state: Data<AppState>) -> HttpResponse {
    callback(&req, &body, &state, webhook::recording).await
}

/// Call Control webhooks of the agents' SIP connections (their own outbound calls).
async fn telnyx_events(req: HttpRequest, body: Bytes, state: Data<AppState>) -> HttpResponse {
    if let Some(refused) = refusal(&req, &body, &state) {
        return refused;
    }
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::warn!(error = %e, "bad Call Control event refused");
            return bad_request(&e);
        }
    };
    let now = state.clock.now_ms();
    match state.outbound.apply(&envelope.data, now, &state.roster) {
        Ok((outcome, notification)) => {
            tracing::debug!(event_type = %envelope.data.event_type, id = envelope.data.id.as_deref(), ?outcome, "Call Control event");
            if let Some(n) = notification {
                state.notifier.notify(n);
            }
            HttpResponse::Ok().finish()
        }
        Err(e) => {
            tracing::warn!(error = %e, "bad Call Control event refused");
            bad_request(&e)
        }
    }
}

fn bad_request(e: &dyn std::fmt::Display) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(format!("bad request: {e}\n"))
}

async fn audio(req: HttpRequest, file: web::Path<String>, state: Data<AppState>) -> HttpResponse {
    let Some(path) = state.audio.path(&file) else {
        tracing::debug!(file = %file.as_str(), "audio file refused: not in the audio folder");
        return not_found().await;
    };
    match NamedFile::open_async(path).await {
        Ok(named) => {
            let mut res = named
                .use_etag(true)
                .use_last_modified(true)
                .into_response(&req);
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            res
        }
        Err(e) => {
            tracing::warn!(file = %file.as_str(), error = %e, "audio file vanished since start");
            not_found().await
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// Ready once serving, not while starting or shutting down, and not while the configured Redis
/// does not answer.
async fn readyz(state: Data<AppState>) -> HttpResponse {
    let serving = state.ready.load(Ordering::Relaxed);
    let store =
        tokio::time::timeout(std::time::Duration::from_millis(500), state.store.ping()).await;
    let (ok, why) = match (serving, store) {
        (false, _) => (false, "not ready: starting or shutting down\n"),
        (true, Ok(Ok(()))) => (true, "ready\n"),
        (true, _) => (false, "not ready: the call store (Redis) does not answer\n"),
    };
    let mut res = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.content_type("text/plain; charset=utf-8").body(why)
}

async fn metrics(state: Data<AppState>) -> HttpResponse {
    let live = state.store.live(state.clock.now_ms()).await.ok();
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode(live))
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("not found\n")
}
