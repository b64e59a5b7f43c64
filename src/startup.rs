//! Building the application apart from running it: [`Application::build`] loads and checks
//! everything, wires the components, binds (port 0 in tests) and exposes the port;
//! [`Application::run_until_stopped`] starts the background tasks, serves, and stops in order.
//! Nothing here decides anything about calls.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web::Data;
use prometheus_client::registry::Registry;
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::JobScheduler;

use crate::agents::own_calls::OwnCalls;
use crate::agents::presence::PresenceStore;
use crate::agents::shared::{AgentSync, SharedAgents};
use crate::agents::Agents;
use crate::audio::AudioDir;
use crate::call::redis_store::{self, RedisStore};
use crate::call::{CallStore, Expiry, MemoryStore, StoreError};
use crate::config::{Backend, Settings};
use crate::jobs::{JobContext, Jobs};
use crate::lease::Lease;
use crate::lines::{LineControl, LineOverrides};
use crate::metrics::HttpMetrics;
use crate::routes::{Admin, Context, Readiness};
use crate::service::CallService;
use crate::shutdown::stop_requested;
pub use crate::shutdown::ShutdownHandle;
use crate::signature::Route;
use crate::sink::{Sink, Sinks};
use crate::texml::{TemplateError, Urls};
use crate::time::{Clock, SystemClock};

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
    Scheduler(#[from] tokio_cron_scheduler::JobSchedulerError),
    #[error("state.redis_url: cannot connect to Redis ({0})")]
    Redis(StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("admin.overrides_file: {0}")]
    Overrides(#[from] crate::lines::OverrideError),
    #[error("ledger: {0}")]
    Ledger(#[from] crate::ledger::OpenError),
    #[error("recordings: {0}")]
    Recordings(String),
}

/// The recordings archive: in `recordings.store`, else `recordings.dir` (else `recordings/` under
/// `paths.data`), its links signed with `recordings.link_key`, else the admin token (else no
/// links); the provider's copies deleted under `recordings.delete_from_provider`.
fn archive(
    ledger: crate::ledger::Ledger,
    settings: &Settings,
    clock: Arc<dyn Clock>,
    registry: &mut Registry,
) -> Result<Arc<crate::ledger::archive::Archive>, StartError> {
    let r = &settings.recordings;
    let store = crate::ledger::store::Store::open(settings).map_err(StartError::Recordings)?;
    use crate::ledger::archive::ProviderCopies;
    let copies = match settings.provider.kind {
        _ if !r.delete_from_provider => None,
        crate::texml::Provider::Telnyx => {
            settings
                .telnyx
                .api_key
                .clone()
                .map(|key| ProviderCopies::Telnyx {
                    base: settings.telnyx.api_base_url.clone(),
                    key,
                })
        }
        crate::texml::Provider::Twilio => {
            settings
                .twilio
                .auth_token
                .clone()
                .map(|token| ProviderCopies::Twilio {
                    base: settings.twilio.api_base_url.clone(),
                    token,
                })
        }
    };
    let key = r.link_key.clone().or_else(|| settings.admin.token.clone());
    let links = key.map(|key| {
        crate::ledger::archive::Links::new(key, &settings.server.public_url, r.link_ttl_hours)
    });
    Ok(crate::ledger::archive::Archive::start(
        ledger,
        store,
        copies,
        r.clone(),
        links,
        clock,
        registry,
    ))
}

/// This replica's name on the dashboard: the host's (a pod's name in Kubernetes) and a few
/// random characters, so replicas on one host differ.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "switchboard".to_owned());
    let tag = crate::ledger::archive::hex(&argon2::password_hash::generate_salt()[..2]);
    format!("{host}-{tag}")
}

/// What tests and tools may add: more sinks (after the built-in ones), and another clock.
#[derive(Default)]
pub struct Overrides {
    pub sinks: Vec<Arc<dyn Sink>>,
    pub clock: Option<Arc<dyn Clock>>,
}

/// The background work, started by [`Application::run_until_stopped`].
struct Tasks {
    service: Arc<CallService>,
    sweep_every: Duration,
    /// Sends conference mode's requests to the provider (`None`: no line in that mode).
    conference_worker: Option<crate::conference::Worker>,
    lease: Arc<Lease>,
    agent_sync: Option<AgentSync>,
    scheduler: Option<JobScheduler>,
    sinks: Sinks,
    archive: Option<Arc<crate::ledger::archive::Archive>>,
    feed: Option<Arc<crate::dashboard::feed::Feed>>,
}

pub struct Application {
    port: u16,
    server: Server,
    readiness: Readiness,
    tasks: Tasks,
    shutdown: ShutdownHandle,
    shutdown_delay: Duration,
    flush_timeout: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        Self::build_with(settings, Overrides::default()).await
    }

    /// As [`Application::build`], with some parts added or replaced.
    pub async fn build_with(
        settings: Settings,
        overrides: Overrides,
    ) -> Result<Application, StartError> {
        let mut registry = crate::metrics::registry();
        crate::telemetry::register(&mut registry);
        let http_metrics = HttpMetrics::new(&mut registry);
        let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));

        let urls = Urls::new(&settings.server.public_url)?;
        let audio = AudioDir::scan(&settings.paths.audio);
        let renderer = settings.renderer(urls, &audio)?;

        let expiry = Expiry::from_secs(settings.calls.grace_secs, settings.calls.ttl_secs);
        let prefix = &settings.state.key_prefix;
        let (store, redis): (Arc<dyn CallStore>, _) = match settings.state.backend {
            Backend::Memory => (Arc::new(MemoryStore::new(expiry)), None),
            Backend::Redis => {
                let url = settings.state.redis_url.expose_secret().trim().to_owned();
                let conn = redis_store::connect(&url)
                    .await
                    .map_err(StartError::Redis)?;
                let store = RedisStore::new(conn.clone(), prefix, expiry);
                (Arc::new(store), Some(conn))
            }
        };
        let line_overrides = Arc::new(match &redis {
            Some(conn) => LineOverrides::redis(conn.clone(), format!("{prefix}line_overrides")),
            None => LineOverrides::memory(settings.admin.overrides_file.clone())?,
        });
        let presence = Arc::new(match &redis {
            Some(conn) => PresenceStore::redis(conn.clone(), format!("{prefix}presence")),
            None => PresenceStore::memory(),
        });
        let lease = Arc::new(match &redis {
            Some(conn) => Lease::redis(
                conn.clone(),
                format!("{prefix}lease:jobs"),
                Duration::from_secs(settings.state.lease_ttl_secs),
            ),
            None => Lease::solo(),
        });
        lease.register(&mut registry);

        let policy = settings.policy();
        let api_key = settings.telnyx.api_key.clone();
        let from_api = settings.telnyx.agents_from_api;
        // Agents from the Telnyx API replace the static list (telnyx.agents_from_api).
        let agents = match from_api {
            true if !settings.agents.is_empty() => {
                tracing::info!("agents come from the Telnyx API: static [[agents]] are ignored");
                Vec::new()
            }
            true => Vec::new(),
            false => settings.agents.clone(),
        };
        let static_agents = agents.len();
        let members = match settings.lines.is_empty() {
            true => vec![(policy.line.clone(), None)],
            false => settings
                .lines
                .iter()
                .map(|l| (l.id.clone(), l.agents.clone()))
                .collect(),
        };
        let agents = Arc::new(Agents::for_lines(members, agents));
        agents.register(&mut registry);

        let ledger = crate::ledger::Ledger::open(&settings).await?;
        let archive = match &ledger {
            Some(ledger) if settings.recordings.archive => Some(archive(
                ledger.clone(),
                &settings,
                clock.clone(),
                &mut registry,
            )?),
            _ => None,
        };
        let mut extra = overrides.sinks;
        let mut ledger_queue = None;
        if let Some(ledger) = &ledger {
            let sink = crate::ledger::sink::LedgerSink::start(
                ledger.clone(),
                settings.privacy.ledger(),
                settings.ledger.queue_capacity,
                archive.clone(),
                clock.clone(),
                &mut registry,
            );
            ledger_queue = Some(sink.stats());
            extra.insert(0, Arc::new(sink));
        }
        let verifier = settings.verifier();
        verifier.register(&mut registry);
        // What the dashboard reads of the lines (it changes them through the one made below,
        // whose records go to the sinks).
        let line_view = Arc::new(LineControl::new(
            policy.clone(),
            settings.line_names(),
            line_overrides.clone(),
            Sinks::default(),
            clock.clone(),
        ));
        let feed = match settings.dashboard.enabled() {
            false => {
                tracing::info!("dashboard off: no [[dashboard.users]], users_file or proxy_header (README: Dashboard)");
                None
            }
            true => {
                let sources = crate::dashboard::feed::Sources {
                    store: store.clone(),
                    agents: agents.clone(),
                    presence: presence.clone(),
                    lines: line_view,
                    ledger: ledger.clone(),
                    archive: archive.clone(),
                    spec: crate::ledger::report::Spec::of(&settings),
                    daily_reset: settings.dashboard.daily_reset,
                    recent_voicemails: settings.dashboard.recent_voicemails,
                    mask: settings.privacy.mask_caller_numbers,
                    clock: clock.clone(),
                    rejected: verifier.rejected.clone(),
                    slack: std::sync::OnceLock::new(),
                    ledger_queue,
                    replica: replica_name(),
                };
                let bus = redis.as_ref().map(|conn| crate::dashboard::feed::Bus {
                    url: settings.state.redis_url.expose_secret().trim().to_owned(),
                    conn: conn.clone(),
                    channel: format!("{prefix}dashboard"),
                });
                let feed = crate::dashboard::feed::Feed::new(sources, bus, &mut registry);
                extra.push(feed.sink());
                Some(feed)
            }
        };
        let (sinks, slack_stats) = crate::sink::build(&settings, extra, &mut registry);
        let lines = Arc::new(LineControl::new(
            policy.clone(),
            settings.line_names(),
            line_overrides.clone(),
            sinks.clone(),
            clock.clone(),
        ));
        if let (Some(feed), Some(stats)) = (&feed, slack_stats) {
            feed.set_slack(stats);
        }
        if let Some(archive) = &archive {
            archive.set_sinks(sinks.clone());
        }
        let parts = crate::service::Parts {
            store,
            agents: agents.clone(),
            own_calls: OwnCalls::new(expiry, policy.routing, policy.time_limit_secs),
            policy: policy.clone(),
            overrides: line_overrides.clone(),
            presence,
            sinks: sinks.clone(),
            clock: clock.clone(),
            deferred_capacity: settings.calls.retry_queue,
            requests: None,
        };
        // Conference mode's requests to the provider, when a line is in conference mode.
        let conference = settings
            .lines
            .iter()
            .any(|l| l.mode == crate::config::LineMode::Conference)
            .then(|| {
                crate::conference::queue(
                    crate::conference::api::VoiceApi::new(&settings),
                    renderer.urls().clone(),
                    settings.conference.queue_capacity,
                    settings.conference.concurrency,
                    &mut registry,
                )
            });
        let (requests, conference_worker) = match conference {
            Some((requests, worker)) => (Some(requests), Some(worker)),
            None => (None, None),
        };
        let parts = crate::service::Parts { requests, ..parts };
        let service = Arc::new(CallService::new(parts, &mut registry));
        tracing::info!(
            static_agents,
            audio_files = audio.len(),
            telnyx_api = api_key.is_some(),
            slack = settings.slack.webhook_url.is_some(),
            "configuration and templates loaded"
        );

        let scheduler = match api_key {
            Some(key) => {
                let cx = JobContext {
                    agents: agents.clone(),
                    sinks: sinks.clone(),
                    clock: clock.clone(),
                    lease: lease.clone(),
                };
                let jobs = Arc::new(Jobs::new(&settings, key, cx, &mut registry));
                let first_limit = Duration::from_secs(settings.telnyx.timeout_secs * 4 + 5);
                Some(jobs.schedule(&settings, first_limit).await?)
            }
            None => None,
        };
        let agent_sync = redis.map(|conn| AgentSync {
            shared: SharedAgents::new(conn, format!("{prefix}agents")),
            agents: agents.clone(),
            lease: lease.clone(),
            publishes: scheduler.is_some() && from_api,
            every: Duration::from_secs(settings.state.agents_sync_secs),
        });

        tracing::info!(
            callbacks = ?verifier.effective_mode(Route::Callback),
            voice_requests = ?verifier.effective_mode(Route::Voice),
            "webhook signature checks (README: Provider notes)"
        );
        let readiness = Readiness::new(&mut registry);
        let gate = feed
            .as_ref()
            .map(|_| crate::dashboard::auth::Gate::new(&settings.dashboard, &mut registry));
        let dashboard = feed.clone().zip(gate).map(|(feed, gate)| {
            tracing::info!(
                users = settings.dashboard.users.len(),
                proxy = settings.dashboard.proxy.as_ref().map(|p| p.header.as_str()),
                "dashboard on at /dashboard"
            );
            crate::routes::Dashboard {
                gate,
                feed,
                lines: lines.clone(),
                heartbeat: Duration::from_secs(settings.dashboard.heartbeat_secs),
            }
        });
        let admin = settings.admin.token.clone().map(|token| Admin {
            token,
            lines,
            ledger,
            mask_callers: settings.privacy.mask_caller_numbers,
            report: crate::ledger::report::Spec::of(&settings),
        });
        let context = Data::new(Context {
            service: service.clone(),
            admin,
            renderer,
            verifier,
            audio,
            readiness: readiness.clone(),
            metrics: Arc::new(registry),
            clock,
            http: http_metrics.clone(),
            recordings: archive.clone(),
            dashboard,
        });

        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener.local_addr()?.port();
        let server = crate::routes::serve(listener, context, http_metrics, &settings.server)?;
        Ok(Application {
            port,
            server,
            readiness,
            tasks: Tasks {
                service,
                sweep_every: Duration::from_secs(settings.calls.sweep_interval_secs),
                conference_worker,
                lease,
                agent_sync,
                scheduler,
                sinks,
                archive,
                feed,
            },
            shutdown: ShutdownHandle::default(),
            shutdown_delay: Duration::from_secs(settings.server.shutdown_delay_secs),
            flush_timeout: Duration::from_secs(settings.slack.flush_timeout_secs),
        })
    }

    /// A handle that starts the shutdown, as SIGTERM does.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves, with the background tasks, until SIGTERM, SIGINT or the shutdown handle. Then, in
    /// order: `/readyz` turns false; the server keeps serving for `server.shutdown_delay_secs`
    /// (the load balancer notices); it stops accepting and lets in-flight requests finish (up to
    /// `server.shutdown_timeout_secs`); the background tasks and jobs stop; the lease is given
    /// up; the sinks flush their queues (up to `slack.flush_timeout_secs`; what is left is
    /// counted and logged).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Tasks {
            service,
            sweep_every,
            conference_worker,
            lease,
            agent_sync,
            scheduler,
            sinks,
            archive,
            feed,
        } = self.tasks;
        let mut background: Vec<JoinHandle<()>> = vec![
            tokio::spawn(service.clone().keep_swept(sweep_every)),
            tokio::spawn(service.clone().keep_retrying(Duration::from_secs(1))),
            tokio::spawn(lease.clone().keep()),
        ];
        if let Some(worker) = conference_worker {
            let report: Arc<dyn crate::conference::Report> = service.clone();
            background.push(tokio::spawn(worker.run(report)));
        }
        if let Some(sync) = agent_sync {
            background.push(tokio::spawn(sync.keep_in_step()));
        }
        if let Some(archive) = archive {
            background.push(tokio::spawn(archive.keep_expiring()));
        }
        if let Some(feed) = &feed {
            background.push(tokio::spawn(feed.clone().keep_building()));
            background.push(tokio::spawn(feed.clone().keep_publishing()));
            background.push(tokio::spawn(feed.clone().keep_listening()));
        }
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        self.readiness.set(true);
        tracing::info!(port = self.port, "switchboard is serving");

        let stopped_by_itself = tokio::select! {
            result = &mut server => Some(result),
            why = stop_requested(&self.shutdown) => {
                tracing::info!(signal = why, "shutting down: not ready any more");
                None
            }
        };
        self.readiness.set(false);
        // Dashboard pages reconnect now, through the load balancer, to a replica that stays.
        if let Some(feed) = &feed {
            feed.stop_streams();
        }
        let result = match stopped_by_itself {
            Some(result) => result,
            None => {
                tokio::time::sleep(self.shutdown_delay).await;
                tracing::info!("shutting down: finishing in-flight requests");
                handle.stop(true).await;
                server.await
            }
        };
        for task in background {
            task.abort();
        }
        if let Some(mut scheduler) = scheduler {
            let _ = scheduler.shutdown().await;
        }
        service.flush_deferred(self.flush_timeout).await;
        // Another replica takes the jobs over at once instead of after the lease expires.
        lease.release().await;
        sinks.flush(self.flush_timeout).await;
        tracing::info!("stopped");
        result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}
