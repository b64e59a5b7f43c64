//! The HTTP boundary: thin handlers that verify, parse, hand the event to the call service and
//! render its reply. Everything a handler needs is in [`Context`], which lives here, so nothing
//! deeper imports the routes back. The decisions live in [`crate::call::transition`].
//!
//! | route | what | file |
//! |---|---|---|
//! | `GET`/`POST /texml/inbound` | voice URL: greeting, then ring every agent | [`voice`] |
//! | `GET`/`POST /texml/dial?round=N` | Dial action: after-call, next round, or voicemail | [`voice`] |
//! | `GET`/`POST /texml/menu?attempt=N&line=ID` | a line's menu: the key pressed, or none | [`voice`] |
//! | `GET`/`POST /texml/voicemail` | Record action: goodbye | [`voice`] |
//! | `GET`/`POST /texml/screen?call=&round=&group=&agent=` | a screened leg's whisper: press 1 | [`voice`] |
//! | `GET`/`POST /texml/screen/answer?…` | the key a screened agent pressed: connect or hang up | [`voice`] |
//! | `GET`/`POST /texml/conference/organizer?call=&agent=` (`/answer`) | conference mode: an organizer's call answered: hello, press 1 (the key pressed) | [`voice`] |
//! | `GET`/`POST /texml/conference/left`, `/resume`, `/hold`, `/announce`, `/organizer/left` | conference mode: the caller's room ended; a moved caller's document; hold audio; "NAME is joining"; an organizer's room ended | [`voice`] |
//! | `POST /texml/conference/leg?call=&agent=`, `/events?call=` | conference mode: organizers' call status callbacks; the room's events | [`callbacks`] |
//! | `POST /texml/status` | status callbacks of the call and of every dialled leg | [`callbacks`] |
//! | `POST /texml/recording?kind=voicemail\|conversation\|conference` | recording status callbacks | [`callbacks`] |
//! | `POST /telnyx/events` | Call Control events of the agents' own calls | [`callbacks`] |
//! | `GET /audio/{file}` | prompts from the audio folder | [`audio`] |
//! | `GET /admin/lines`, `POST /admin/lines/{id}/close\|open` | lines' state; open or close by hand (Bearer token) | [`admin`] |
//! | `GET /admin/agents`, `POST /admin/agents/{id}/away\|available` | agents' state; away or back by hand (Bearer token) | [`admin`] |
//! | `GET /admin/calls`, `GET /admin/calls/{sid}`, `GET /admin/report` | the call history, one call with its events, reports (Bearer token) | [`history`] |
//! | `GET /admin/calls/{sid}/participants`; `POST …/participants` (add), `…/participants/{label}/mute\|unmute\|hold\|resume\|remove`, `…/recording/start\|stop` | live control of a conference call (Bearer token) | [`control`] |
//! | `GET /recordings/{id}` | an archived recording (Bearer token, or a signed link that expires) | [`recordings`] |
//! | `GET /dashboard`, `/dashboard/events`, … | the live dashboard and its event stream (sign-in) | [`dashboard`] |
//! | `GET /healthz`, `/readyz`, `/metrics` | alive; ready to take calls; Prometheus | [`health`] |

mod admin;
mod audio;
mod boundary;
mod callbacks;
mod control;
mod dashboard;
pub(crate) mod health;
mod history;
mod recordings;
mod voice;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Data, PayloadConfig};
use actix_web::{guard, App, HttpRequest, HttpResponse, HttpServer};
use prometheus_client::registry::Registry;
use tracing::Instrument;

use crate::audio::AudioDir;
use crate::config::ServerSettings;
use crate::metrics::HttpMetrics;
use crate::service::CallService;
use crate::signature::Verifier;
use crate::texml::Renderer;
use crate::time::Clock;
use crate::webhook::Params;

pub(crate) use admin::Admin;
pub(crate) use dashboard::Dashboard;
pub(crate) use health::Readiness;

/// What the handlers share. Built once by [`crate::startup`].
pub(crate) struct Context {
    /// The call path: every event goes through it.
    pub(crate) service: Arc<CallService>,
    /// The admin API (`None`: off).
    pub(crate) admin: Option<Admin>,
    /// Replies to documents; also holds the apology document for when anything fails.
    pub(crate) renderer: Renderer,
    /// Checked before a webhook's body is read for anything else.
    pub(crate) verifier: Verifier,
    pub(crate) audio: AudioDir,
    pub(crate) readiness: Readiness,
    /// Frozen once every component registered its metrics; `/metrics` encodes it.
    pub(crate) metrics: Arc<Registry>,
    /// For signature timestamps.
    pub(crate) clock: Arc<dyn Clock>,
    /// Requests by route and status; bad webhooks.
    pub(crate) http: HttpMetrics,
    /// The recordings archive (`None`: off).
    pub(crate) recordings: Option<Arc<crate::ledger::archive::Archive>>,
    /// The live dashboard (`None`: off, nobody can sign in).
    pub(crate) dashboard: Option<Dashboard>,
}

/// Largest webhook body accepted (Telnyx callbacks are about 2 KiB).
const MAX_BODY: usize = 64 * 1024;

/// The HTTP server on `listener`: one span per request (handlers log inside it), the HTTP
/// metrics, the routes. It does not handle signals: the application stops it, after `/readyz`
/// has turned false.
pub(crate) fn serve(
    listener: TcpListener,
    context: Data<Context>,
    metrics: HttpMetrics,
    settings: &ServerSettings,
) -> std::io::Result<Server> {
    let mut server = HttpServer::new(move || {
        let metrics = metrics.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                let metrics = metrics.clone();
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                let span = crate::telemetry::request_span(req.method(), req.path());
                let started = std::time::Instant::now();
                let answer = span.in_scope(|| srv.call(req));
                async move {
                    let res = answer.instrument(span.clone()).await?;
                    let status = res.status().as_u16();
                    span.record("status", status);
                    metrics.request(&route, status, started.elapsed());
                    Ok(res)
                }
            })
            .app_data(context.clone())
            .app_data(PayloadConfig::new(MAX_BODY))
            .configure(configure)
    })
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .disable_signals();
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.listen(listener)?.run())
}

fn configure(cfg: &mut web::ServiceConfig) {
    let get_or_post = || guard::Any(guard::Get()).or(guard::Post());
    cfg.route(
        "/texml/inbound",
        web::route().guard(get_or_post()).to(voice::inbound),
    )
    .route(
        "/texml/dial",
        web::route().guard(get_or_post()).to(voice::dial),
    )
    .route(
        "/texml/menu",
        web::route().guard(get_or_post()).to(voice::menu),
    )
    .route(
        "/texml/voicemail",
        web::route().guard(get_or_post()).to(voice::voicemail),
    )
    .route(
        "/texml/screen",
        web::route().guard(get_or_post()).to(voice::screen),
    )
    .route(
        "/texml/screen/answer",
        web::route().guard(get_or_post()).to(voice::screen_answer),
    )
    .route(
        "/texml/conference/organizer",
        web::route().guard(get_or_post()).to(voice::organizer),
    )
    .route(
        "/texml/conference/organizer/answer",
        web::route()
            .guard(get_or_post())
            .to(voice::organizer_answer),
    )
    .route(
        "/texml/conference/organizer/left",
        web::route().guard(get_or_post()).to(voice::organizer_left),
    )
    .route(
        "/texml/conference/left",
        web::route().guard(get_or_post()).to(voice::room_left),
    )
    .route(
        "/texml/conference/resume",
        web::route().guard(get_or_post()).to(voice::resume),
    )
    .route(
        "/texml/conference/hold",
        web::route().guard(get_or_post()).to(voice::hold),
    )
    .route(
        "/texml/conference/announce",
        web::route().guard(get_or_post()).to(voice::announce),
    )
    .route(
        "/texml/conference/leg",
        web::post().to(callbacks::organizer_status),
    )
    .route("/texml/conference/events", web::post().to(callbacks::room))
    .route("/texml/status", web::post().to(callbacks::status))
    .route("/texml/recording", web::post().to(callbacks::recording))
    .route("/telnyx/events", web::post().to(callbacks::telnyx_events))
    .route("/audio/{file}", web::get().to(audio::audio))
    .route("/audio/{file}", web::head().to(audio::audio))
    .route("/admin/lines", web::get().to(admin::lines))
    .route("/admin/lines/{id}/close", web::post().to(admin::close))
    .route("/admin/lines/{id}/open", web::post().to(admin::open))
    .route("/admin/agents", web::get().to(admin::agents))
    .route("/admin/calls", web::get().to(history::calls))
    .route("/admin/calls/{sid}", web::get().to(history::call))
    .route(
        "/admin/calls/{sid}/participants",
        web::get().to(admin::room),
    )
    .route(
        "/admin/calls/{sid}/participants",
        web::post().to(admin::add),
    )
    .route(
        "/admin/calls/{sid}/participants/{who}/{action}",
        web::post().to(admin::participant),
    )
    .route(
        "/admin/calls/{sid}/recording/{action}",
        web::post().to(admin::recording),
    )
    .route("/admin/report", web::get().to(history::report))
    .route("/recordings/{id}", web::get().to(recordings::recording))
    .route("/admin/agents/{id}/away", web::post().to(admin::away))
    .route(
        "/admin/agents/{id}/available",
        web::post().to(admin::available),
    )
    .route("/dashboard", web::get().to(dashboard::page))
    .route("/dashboard/app.js", web::get().to(dashboard::script))
    .route("/dashboard/app.css", web::get().to(dashboard::style))
    .route("/dashboard/me", web::get().to(dashboard::me))
    .route("/dashboard/events", web::get().to(dashboard::events))
    .route(
        "/dashboard/calls/{sid}/participants",
        web::post().to(dashboard::call_add),
    )
    .route(
        "/dashboard/calls/{sid}/participants/{who}/{action}",
        web::post().to(dashboard::call_participant),
    )
    .route(
        "/dashboard/calls/{sid}/recording/{action}",
        web::post().to(dashboard::call_recording),
    )
    .route(
        "/dashboard/lines/{id}/close",
        web::post().to(dashboard::line_close),
    )
    .route(
        "/dashboard/lines/{id}/open",
        web::post().to(dashboard::line_open),
    )
    .route(
        "/dashboard/agents/{id}/away",
        web::post().to(dashboard::agent_away),
    )
    .route(
        "/dashboard/agents/{id}/available",
        web::post().to(dashboard::agent_available),
    )
    .route(
        "/dashboard/recordings/{id}",
        web::get().to(dashboard::recording),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .default_service(web::to(not_found));
}

/// Our own query parameters (`round`, `kind`), as we wrote them into the document.
fn own_params(req: &HttpRequest) -> Params {
    Params::parse(req.query_string().as_bytes()).unwrap_or_default()
}

fn xml(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/xml; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(body)
}

fn text(mut res: actix_web::HttpResponseBuilder, body: String) -> HttpResponse {
    res.content_type("text/plain; charset=utf-8").body(body)
}

async fn not_found() -> HttpResponse {
    text(HttpResponse::NotFound(), "not found\n".into())
}
