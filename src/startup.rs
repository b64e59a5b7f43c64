//! Building the application apart from running it: [`Application::build`] loads and checks
//! everything, binds (port 0 in tests) and exposes the port; [`Application::run_until_stopped`]
//! serves and sweeps.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::web::{Data, PayloadConfig};
use actix_web::{App, HttpServer};
use tracing_actix_web::TracingLogger;

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::audio::AudioDir;
use secrecy::ExposeSecret;

use crate::call::redis_store::{self, RedisStore};
use crate::call::{CallStore, Context, Effect, Ignored, MemoryStore, Reply, StoreError};
use crate::clock::{Clock, SystemClock};
use crate::cluster::{Lease, SharedAgents};
use crate::config::{Backend, Settings};
use crate::domain::CallSid;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::notify::queue::DeliveryPolicy;
use crate::notify::{
    slack, DeliveryStats, Dispatcher, Notification, Notifier, Privacy, SlackQueue,
};
use crate::outbound::OutboundCalls;
use crate::roster::Roster;
use crate::signature::Verifier;
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
    #[error("jobs: {0}")]
    Scheduler(String),
    #[error("state.redis_url: cannot connect to Redis ({0})")]
    Redis(String),
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
    pub clock: Arc<dyn Clock>,
    /// Agents' own calls in progress.
    pub outbound: OutboundCalls,
    /// The scheduled jobs, when a Telnyx API key is configured.
    pub jobs: Option<Arc<Jobs>>,
    /// Slack delivery counters, when Slack is configured.
    pub slack: Option<Arc<DeliveryStats>>,
    /// Webhook signature checks.
    pub verifier: Verifier,
    /// Whether this replica runs the scheduled jobs.
    pub lease: Lease,
    /// The agent list shared between replicas (Redis backend).
    pub shared_agents: Option<SharedAgents>,
    pub counters: Counters,
    pub metrics: Arc<Metrics>,
    pub max_active_calls: usize,
    pub rounds: u8,
    /// False until serving and again while shutting down; `/readyz` reports it.
    pub ready: AtomicBool,
}

impl AppState {
    /// Applies one event to its call and runs the effects; returns the call's reply.
    pub async fn handle(
        &self,
        sid: &CallSid,
        event: &crate::call::Event,
    ) -> Result<Reply, StoreError> {
        let available = self.roster.available();
        let now = self.clock.now_ms();
        // Only a new call needs the live count (one more round trip with Redis).
        let accepting = match event {
            crate::call::Event::Incoming { .. } => {
                self.store.live(now).await? < self.max_active_calls
            }
            _ => true,
        };
        let ctx = Context {
            rounds: self.rounds,
            available: &available,
            accepting,
        };
        let applied = self.store.apply(sid, event, now, &ctx).await?;
        if let Some(outcome) = applied.ended {
            self.metrics.call_ended(outcome);
        }
        for effect in applied.effects {
            match effect {
                Effect::Notify(notice) => self.notifier.notify(Notification::Call {
                    sid: sid.clone(),
                    at: now,
                    notice,
                }),
                Effect::Ignored(Ignored::UnknownCall) => {
                    tracing::warn!(event = ?EventKind(event), "callback for an unknown call")
                }
                Effect::Ignored(Ignored::OverCapacity) => {
                    self.metrics.call_ended("refused");
                    let total = self.counters.over_capacity.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        over_capacity_total = total,
                        max_active_calls = self.max_active_calls,
                        "too many live calls: new caller asked to call back later"
                    )
                }
                Effect::Ignored(Ignored::TooManyLegs) => {
                    tracing::warn!("leg ignored: the call already has too many legs")
                }
                Effect::Ignored(ref why) => {
                    tracing::debug!(?why, event = ?EventKind(event), "callback changed nothing")
                }
            }
        }
        Ok(applied.reply)
    }
}

/// What was refused, since start. Each is also logged when it happens.
#[derive(Debug, Default)]
pub struct Counters {
    /// Webhooks refused (or, in `log` mode, let through) for a missing or bad signature.
    pub rejected_signatures: AtomicU64,
    /// New calls refused past `limits.max_active_calls`.
    pub over_capacity: AtomicU64,
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

/// Replacements for tests and tools: where notifications go, and what time it is.
#[derive(Default)]
pub struct Overrides {
    pub notifier: Option<Arc<dyn Notifier>>,
    pub clock: Option<Arc<dyn Clock>>,
}

pub struct Application {
    port: u16,
    server: Server,
    state: Data<AppState>,
    sweep_every: Duration,
    scheduler: Option<JobScheduler>,
    slack: Option<Arc<SlackQueue>>,
    shutdown: ShutdownHandle,
    shutdown_delay: Duration,
    flush_timeout: Duration,
    agents_sync: Duration,
}

/// Starts the same shutdown as SIGTERM (for tests and embedding).
#[derive(Clone, Default)]
pub struct ShutdownHandle(Arc<tokio::sync::Notify>);

impl ShutdownHandle {
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        Self::build_with(settings, Overrides::default()).await
    }

    /// As [`Application::build`], with some parts replaced.
    pub async fn build_with(
        settings: Settings,
        overrides: Overrides,
    ) -> Result<Application, StartError> {
        let urls = Urls::new(&settings.server.public_url)?;
        let audio = AudioDir::scan(&settings.paths.audio);
        let prompts = Prompts::load(&settings.paths.templates, &audio, &|name| urls.audio(name))?;
        let renderer = Renderer::new(&settings, urls, prompts)?;
        let (store, redis): (Arc<dyn CallStore>, _) = match settings.state.backend {
            Backend::Memory => (
                Arc::new(MemoryStore::new(
                    settings.calls.grace_secs,
                    settings.calls.ttl_secs,
                )),
                None,
            ),
            Backend::Redis => {
                let conn = redis_store::connect(settings.state.redis_url.expose_secret().trim())
                    .await
                    .map_err(|e| StartError::Redis(e.0))?;
                let store = RedisStore::new(
                    conn.clone(),
                    &settings.state.key_prefix,
                    settings.calls.grace_secs,
                    settings.calls.ttl_secs,
                );
                (Arc::new(store), Some(conn))
            }
        };
        let prefix = &settings.state.key_prefix;
        let lease = match &redis {
            Some(conn) => Lease::redis(
                conn.clone(),
                format!("{prefix}lease:jobs"),
                Duration::from_secs(settings.state.lease_ttl_secs),
            ),
            None => Lease::solo(),
        };
        let shared_agents = redis.map(|conn| SharedAgents::new(conn, format!("{prefix}agents")));
        let jobs = Jobs::from_settings(&settings).map(Arc::new);
        // With the Telnyx API, the agents come from it; the static list is for running without.
        let agents = if jobs.is_some() {
            if !settings.agents.is_empty() {
                tracing::info!("a Telnyx API key is set: static [[agents]] are ignored");
            }
            Vec::new()
        } else {
            settings.static_agents()
        };
        tracing::info!(
            static_agents = agents.len(),
            audio_files = audio.len(),
            telnyx_api = jobs.is_some(),
            slack = settings.slack.url().is_some(),
            "configuration and templates loaded"
        );
        let (notifier, slack_queue) = match overrides.notifier {
            Some(notifier) => (notifier, None),
            None => {
                let privacy = Privacy {
                    mask_caller_numbers: settings.privacy.mask_caller_numbers,
                };
                let slack = settings.slack.url().map(|url| {
                    let s = &settings.slack;
                    let policy = DeliveryPolicy {
                        capacity: s.queue_capacity,
                        timeout: Duration::from_secs(s.timeout_secs),
                        max_attempts: s.max_attempts,
                        backoff_base: Duration::from_millis(s.retry_base_ms),
                        backoff_max: Duration::from_millis(s.retry_max_ms),
                    };
                    let queue = Arc::new(SlackQueue::start(url.clone(), policy));
                    (queue, slack::Style { mention: s.mention })
                });
                let queue = slack.as_ref().map(|(q, _)| q.clone());
                let notifier: Arc<dyn Notifier> = Arc::new(Dispatcher { privacy, slack });
                (notifier, queue)
            }
        };
        let telnyx_key = Some(settings.telnyx.public_key.trim())
            .filter(|k| !k.is_empty())
            .and_then(|k| crate::signature::telnyx_key(k).ok());
        let verifier = Verifier {
            mode: settings.security.mode,
            telnyx: telnyx_key,
            twilio: settings.twilio.token().cloned(),
            max_skew_secs: settings.security.max_clock_skew_secs,
            public_base: settings.server.public_url.trim_end_matches('/').to_owned(),
            trust_forwarded: settings.security.trust_forwarded_headers,
        };
        tracing::info!(mode = ?verifier.effective_mode(), "webhook signature checks");
        let state = Data::new(AppState {
            store,
            renderer,
            roster: Roster::new(agents),
            audio,
            notifier,
            clock: overrides.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            outbound: OutboundCalls::new(settings.calls.grace_secs, settings.calls.ttl_secs),
            jobs,
            slack: slack_queue.as_ref().map(|q| q.stats.clone()),
            verifier,
            lease,
            shared_agents,
            counters: Counters::default(),
            metrics: Arc::new(Metrics::new()),
            max_active_calls: settings.limits.max_active_calls,
            rounds: settings.dial.rounds,
            ready: AtomicBool::new(false),
        });
        state.metrics.attach(&state.clone().into_inner());
        let scheduler = match &state.jobs {
            Some(jobs) => {
                // The first refresh is awaited (bounded) so the first call rings real agents.
                let first = jobs.run_agents_refresh(&state.roster, &*state.notifier, &*state.clock);
                let limit = Duration::from_secs(settings.telnyx.timeout_secs * 4 + 5);
                if tokio::time::timeout(limit, first).await.is_err() {
                    tracing::warn!(
                        "the first agents refresh took too long; it will run again on schedule"
                    );
                }
                Some(schedule(&state, &settings).await?)
            }
            None => None,
        };

        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener.local_addr()?.port();
        let shared = state.clone();
        let mut server = HttpServer::new(move || {
            let metrics = shared.metrics.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    let metrics = metrics.clone();
                    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                    let started = std::time::Instant::now();
                    let answer = srv.call(req);
                    async move {
                        let res = answer.await?;
                        metrics.request(&route, res.status().as_u16(), started.elapsed());
                        Ok(res)
                    }
                })
                .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
                .app_data(shared.clone())
                .app_data(PayloadConfig::new(MAX_BODY))
                .configure(crate::routes::configure)
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        // Switchboard handles SIGTERM itself: /readyz must turn false before the listener closes.
        .disable_signals();
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Application {
            port,
            server,
            state,
            sweep_every: Duration::from_secs(settings.calls.sweep_interval_secs),
            scheduler,
            slack: slack_queue,
            shutdown: ShutdownHandle::default(),
            shutdown_delay: Duration::from_secs(settings.server.shutdown_delay_secs),
            flush_timeout: Duration::from_secs(settings.slack.flush_timeout_secs),
            agents_sync: Duration::from_secs(settings.state.agents_sync_secs),
        })
    }

    /// A handle that starts the shutdown, as SIGTERM does.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    /// Serves, sweeping finished and stale calls, until SIGTERM, SIGINT or the shutdown handle.
    /// Then, in order: `/readyz` turns false; the server keeps serving for
    /// `server.shutdown_delay_secs` (the load balancer notices); it stops accepting and lets
    /// in-flight requests finish (up to `server.shutdown_timeout_secs`); the jobs stop; the Slack
    /// queue is flushed (up to `slack.flush_timeout_secs`, what is left is logged with a count).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let every = self.sweep_every;
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = state.clock.now_ms();
                let swept = match state.store.sweep(now).await {
                    Ok(swept) => swept,
                    Err(e) => {
                        tracing::warn!(error = %e, "sweep failed; will try again");
                        continue;
                    }
                };
                let stale_outbound = state.outbound.sweep(now, &state.roster);
                if stale_outbound > 0 {
                    tracing::warn!(
                        stale_outbound,
                        "forgot agents' calls whose hangup never arrived; their agents are free again"
                    );
                }
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
        let cluster = (self.state.shared_agents.is_some())
            .then(|| tokio::spawn(keep_in_step(self.state.clone(), self.agents_sync)));
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        self.state.ready.store(true, Ordering::Relaxed);
        tracing::info!(port = self.port, "switchboard is serving");

        let stopped_by_itself = tokio::select! {
            result = &mut server => Some(result),
            why = stop_requested(&self.shutdown) => {
                tracing::info!(signal = why, "shutting down: not ready any more");
                None
            }
        };
        self.state.ready.store(false, Ordering::Relaxed);
        let result = match stopped_by_itself {
            Some(result) => result,
            None => {
                tokio::time::sleep(self.shutdown_delay).await;
                tracing::info!("shutting down: finishing in-flight requests");
                handle.stop(true).await;
                server.await
            }
        };
        sweeper.abort();
        if let Some(cluster) = cluster {
            cluster.abort();
        }
        if let Some(mut scheduler) = self.scheduler {
            let _ = scheduler.shutdown().await;
        }
        // Another replica takes the jobs over at once instead of after the lease expires.
        self.state.lease.release().await;
        if let Some(queue) = &self.slack {
            queue.shutdown(self.flush_timeout).await;
        }
        tracing::info!("stopped");
        result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// With several replicas: keeps the job lease (taking it when free) and the local agent list in
/// step with the one the lease holder publishes.
async fn keep_in_step(state: Data<AppState>, agents_every: Duration) {
    let mut lease_tick = tokio::time::interval(state.lease.renew_every());
    let mut agents_tick = tokio::time::interval(agents_every);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                let was = state.lease.holding();
                if state.lease.renew().await && !was {
                    publish_agents(&state).await;
                }
            }
            _ = agents_tick.tick() => {
                let Some(shared) = &state.shared_agents else { continue };
                match shared.fetch().await {
                    Ok(Some(agents)) if agents.as_slice() != &*state.roster.all() => {
                        tracing::info!(agents = agents.len(), "agent list updated from the shared one");
                        state.roster.replace(agents);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "shared agent list not readable"),
                }
            }
        }
    }
}

/// The lease holder shares the agent list it read from the provider.
async fn publish_agents(state: &AppState) {
    if let (Some(shared), Some(_)) = (&state.shared_agents, &state.jobs) {
        if let Err(e) = shared.publish(&state.roster.all()).await {
            tracing::warn!(error = %e, "agent list not shared");
        }
    }
}

/// Waits for SIGTERM (Kubernetes), SIGINT (Ctrl-C) or the handle; says which.
async fn stop_requested(handle: &ShutdownHandle) -> &'static str {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn next(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = next(&mut term) => "SIGTERM",
        _ = next(&mut int) => "SIGINT",
        _ = handle.0.notified() => "shutdown handle",
    }
}

/// Wraps each job in the cron scheduler: one line each, the work is in [`crate::jobs`].
async fn schedule(state: &Data<AppState>, settings: &Settings) -> Result<JobScheduler, StartError> {
    let err = |e: tokio_cron_scheduler::JobSchedulerError| StartError::Scheduler(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(err)?;
    let s = state.clone();
    let refresh = Job::new_async(settings.jobs.agents_refresh.as_str(), move |_, _| {
        let s = s.clone();
        Box::pin(async move {
            if let Some(jobs) = &s.jobs {
                jobs.run_agents_refresh(&s.roster, &*s.notifier, &*s.clock)
                    .await;
            }
        })
    })
    .map_err(err)?;
    let s = state.clone();
    let balance = Job::new_async(settings.jobs.balance_check.as_str(), move |_, _| {
        let s = s.clone();
        Box::pin(async move {
            if let Some(jobs) = s.jobs.as_ref().filter(|_| s.lease.holding()) {
                jobs.run_balance_check(&*s.notifier, &*s.clock).await;
            }
        })
    })
    .map_err(err)?;
    scheduler.add(refresh).await.map_err(err)?;
    scheduler.add(balance).await.map_err(err)?;
    scheduler.start().await.map_err(err)?;
    Ok(scheduler)
}
