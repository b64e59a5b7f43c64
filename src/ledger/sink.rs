//! The ledger as a sink: each call fact is queued as it came (bounded, ordered; the call path only
//! clones it) and turned into an [`Entry`] and written by one worker, retried while the database
//! does not answer. Whatever is dropped is counted in `ledger_writes_total{state}` and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::registry::Registry;

use super::archive::{Archive, Job};
use super::{Entry, Keep, Ledger, LegEntry, Write};
use crate::call::{Fact, FactKind};
use crate::domain::CallSid;
use crate::sink::queue::{Attempt, Deliver, DeliveryPolicy, DeliveryQueue};
use crate::sink::{Record, Sink};
use crate::time::{Clock, Millis};

pub struct LedgerSink {
    queue: DeliveryQueue<Queued>,
    /// Where recordings (voicemail, conversation) go to be downloaded (`None`: not archived).
    archive: Option<Arc<Archive>>,
}

/// A fact as the call path hands it over; the writer makes the [`Write`] of it.
#[derive(Debug, Clone)]
enum Queued {
    Call {
        sid: CallSid,
        at: Millis,
        fact: Box<Fact>,
    },
    Leg(LegEntry),
}

impl LedgerSink {
    pub fn start(
        ledger: Ledger,
        numbers: Keep,
        capacity: usize,
        archive: Option<Arc<Archive>>,
        clock: Arc<dyn Clock>,
        registry: &mut Registry,
    ) -> LedgerSink {
        let policy = DeliveryPolicy {
            capacity,
            max_attempts: 10,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            // Whatever queued up while the last transaction ran goes in the next one, and at a
            // steady rate facts wait up to 50 ms for company: a few transactions a second instead
            // of one per fact.
            batch: 256,
            linger: Duration::from_millis(50),
        };
        let writer = Writer {
            ledger,
            clock,
            numbers,
            looked: AtomicU64::new(0),
        };
        // The writer runs on the ledger's own thread (see `background`), not the call path's.
        let _on = background().map(|h| h.enter());
        LedgerSink {
            queue: DeliveryQueue::start("ledger", policy, writer, registry, "ledger_writes"),
            archive,
        }
    }
}

#[async_trait]
impl Sink for LedgerSink {
    fn accept(&self, record: &Record) {
        if let Record::Leg { sid, at, fact, .. } = record {
            self.queue.push(Queued::Leg(LegEntry {
                call_sid: sid.as_str().to_owned(),
                at: *at,
                fact: fact.clone(),
            }));
        }
        if let Record::Call { sid, at, fact } = record {
            self.queue.push(Queued::Call {
                sid: sid.clone(),
                at: *at,
                fact: Box::new(fact.clone()),
            });
            let recording = match &fact.kind {
                FactKind::VoicemailLeft {
                    url,
                    duration_secs,
                    copy,
                } => Some(("voicemail", url, Some(*duration_secs), copy)),
                FactKind::ConversationRecorded {
                    url,
                    duration_secs,
                    copy,
                } => Some(("conversation", url, *duration_secs, copy)),
                _ => None,
            };
            if let (Some(archive), Some((kind, url, duration_secs, copy))) =
                (&self.archive, recording)
            {
                archive.submit(Job {
                    call: sid.clone(),
                    line: fact.line.clone(),
                    from: fact.from.clone(),
                    kind,
                    url: url.to_string(),
                    duration_secs,
                    copy: copy.clone(),
                });
            }
        }
    }

    async fn flush(&self, deadline: Duration) {
        self.queue.shutdown(deadline).await;
    }
}

struct Writer {
    ledger: Ledger,
    clock: Arc<dyn Clock>,
    numbers: Keep,
    /// When the database threads were last looked for (see [`background_priority`]).
    looked: AtomicU64,
}

/// How often new database threads are looked for.
const LOOK_EVERY_MS: u64 = 10_000;

/// SQLite runs each connection on a thread of its own (sqlx names them `sqlx-sqlite-worker-N`).
/// The ledger is background work: those threads get nice 10, so that on a busy machine the call
/// path's threads take the cores first (Linux; elsewhere, and for PostgreSQL, nothing to do).
#[cfg(target_os = "linux")]
fn background_priority() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread's name.
        if !comm.starts_with("sqlx-sqlite-wor") {
            continue;
        }
        let pid = task.file_name().to_str().and_then(|t| t.parse().ok());
        let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) else {
            continue;
        };
        if rustix::process::getpriority_process(Some(pid)).is_ok_and(|nice| nice < 10) {
            if let Err(e) = rustix::process::setpriority_process(Some(pid), 10) {
                tracing::debug!(error = %e, "ledger thread priority unchanged");
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn background_priority() {}

/// The calling thread at nice 10 (Linux).
#[cfg(target_os = "linux")]
fn lower_this_thread() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), 10) {
        tracing::debug!(error = %e, "ledger thread priority unchanged");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread() {}

/// One thread with a runtime of its own, at nice 10, where the ledger's writer turns facts into
/// rows and statements and awaits the database: background work that takes no turn from the
/// threads answering the provider. Shared by every ledger in the process; `None` if it could not
/// be started (the writer then runs on the caller's runtime).
fn background() -> Option<&'static tokio::runtime::Handle> {
    static HANDLE: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new()
                .name("switchboard-ledger".into())
                .spawn(move || {
                    lower_this_thread();
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(rt) => {
                            let _ = tx.send(Some(rt.handle().clone()));
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "no runtime for the ledger; it shares the server's");
                            let _ = tx.send(None);
                        }
                    }
                });
            match started {
                Ok(_) => rx.recv().ok().flatten(),
                Err(e) => {
                    tracing::warn!(error = %e, "no thread for the ledger; it shares the server's");
                    None
                }
            }
        })
        .as_ref()
}

#[async_trait]
impl Deliver<Queued> for Writer {
    async fn attempt(&self, write: &Queued) -> Attempt {
        self.attempt_many(std::slice::from_ref(write)).await
    }

    async fn attempt_many(&self, queued: &[Queued]) -> Attempt {
        let now = self.clock.now_ms();
        let last = self.looked.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOOK_EVERY_MS || last == 0 {
            self.looked.store(now.max(1), Ordering::Relaxed);
            background_priority();
        }
        let writes: Vec<Write> = queued
            .iter()
            .map(|q| match q {
                Queued::Call { sid, at, fact } => {
                    Write::Call(Box::new(Entry::of(sid, *at, fact, &self.numbers)))
                }
                Queued::Leg(leg) => Write::Leg(leg.clone()),
            })
            .collect();
        match self.ledger.write_all(&writes, self.clock.now_ms()).await {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Retry {
                after: None,
                reason: e.to_string(),
            },
        }
    }
}
