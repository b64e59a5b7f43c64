//! Building the application apart from running it: [`Application::build`] loads and checks
//! everything, binds (port 0 in tests) and exposes the port; [`Application::run_until_stopped`]
//! serves and sweeps.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Server;
use actix_web::web::{Data, PayloadConfig};
use actix_web::{App, HttpServer};
use tracing_actix_web::TracingLogger;

use crate::audio::AudioDir;
use crate::call::{CallStore, Context, Effect, Ignored, MemoryStore, Millis, Reply};
use crate::config::Settings;
use crate::domain::CallSid;
use crate::notify::{LogNotifier, Notifier};
use crate::roster::Roster;
use crate::texml::{Prompts, Renderer, TemplateError, Urls};

/// Largest webhook body accepted (Telnyx callbacks are about 2 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Why the server refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("template {0}")]
    Template(#[from] TemplateError),
    #[error("server.public_url: {0}")]
    PublicUrl(#[from] url::ParseError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
pub struct AppState {
    pub store: Arc<dyn CallStore>,
    pub renderer: Renderer,
    pub roster: Roster,
    pub audio: AudioDir,
    pub notifier: Arc<dyn Notifier>,
    pub rounds: u8,
    /// False until serving and again while shutting down; `/readyz` reports it.
    pub ready: AtomicBool,
}

/// The wall clock, in the call logic's unit.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl AppState {
    /// Applies one event to its call and runs the effects; returns the call's reply.
    pub fn handle(&self, sid: &CallSid, event: &crate::call::Event) -> Reply {
        let available = self.roster.available();
        let ctx = Context {
            rounds: self.rounds,
            available: &available,
        };
        let applied = self.store.apply(sid, event, now_ms(), &ctx);
        for effect in &applied.effects {
            match effect {
                Effect::Notify(notice) => self.notifier.notify(sid, notice),
                Effect::Ignored(Ignored::UnknownCall) => {
                    tracing::warn!(event = ?EventKind(event), "callback for an unknown call")
                }
                Effect::Ignored(Ignored::TooManyLegs) => {
                    tracing::warn!("leg ignored: the call already has too many legs")
                }
                Effect::Ignored(why) => {
                    tracing::debug!(?why, event = ?EventKind(event), "callback changed nothing")
                }
            }
        }
        applied.reply
    }
}

/// An event's name for logs, without its caller-controlled fields.
struct EventKind<'a>(&'a crate::call::Event);

impl std::fmt::Debug for EventKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::call::Event::*;
        f.write_str(match self.0 {
            Incoming { .. } => "incoming",
            DialEnded { .. } => "dial-ended",
            LegStatus { .. } => "leg-status",
            CallStatus { .. } => "call-status",
            RecordEnded => "record-ended",
            Recording { .. } => "recording",
        })
    }
}

pub struct Application {
    port: u16,
    server: Server,
    state: Data<AppState>,
    sweep_every: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        Self::build_with(settings, Arc::new(LogNotifier)).await
    }

    /// As [`Application::build`], with the notices handed to `notifier`.
    pub async fn build_with(
        settings: Settings,
        notifier: Arc<dyn Notifier>,
    ) -> Result<Application, StartError> {
        let urls = Urls::new(&settings.server.public_url)?;
        let audio = AudioDir::scan(&settings.paths.audio);
        let prompts = Prompts::load(&settings.paths.templates, &audio, &|name| urls.audio(name))?;
        let renderer = Renderer::new(&settings, urls, prompts)?;
        let store = Arc::new(MemoryStore::new(
            settings.calls.grace_secs,
            settings.calls.ttl_secs,
        ));
        let agents = settings.static_agents();
        tracing::info!(
            agents = agents.len(),
            audio_files = audio.len(),
            "configuration and templates loaded"
        );
        let state = Data::new(AppState {
            store,
            renderer,
            roster: Roster::new(agents),
            audio,
            notifier,
            rounds: settings.dial.rounds,
            ready: AtomicBool::new(false),
        });

        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener.local_addr()?.port();
        let shared = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(shared.clone())
                .app_data(PayloadConfig::new(MAX_BODY))
                .configure(crate::routes::configure)
        })
        .shutdown_timeout(20);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Application {
            port,
            server,
            state,
            sweep_every: Duration::from_secs(settings.calls.sweep_interval_secs),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops (SIGINT/SIGTERM), sweeping finished and stale calls.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let every = self.sweep_every;
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let swept = state.store.sweep(now_ms());
                if swept.stale > 0 {
                    tracing::warn!(
                        stale = swept.stale,
                        "forgot calls whose final callback never arrived"
                    );
                }
                if swept.ended > 0 {
                    tracing::debug!(ended = swept.ended, "forgot finished calls");
                }
            }
        });
        self.state.ready.store(true, Ordering::Relaxed);
        tracing::info!(port = self.port, "switchboard is serving");
        let result = self.server.await;
        self.state.ready.store(false, Ordering::Relaxed);
        sweeper.abort();
        result
    }
}
