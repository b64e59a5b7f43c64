//! The ledger as a sink: each call fact is queued as it came (bounded, ordered; the call path only
//! clones it) and turned into an [`Entry`] and written by one worker, retried while the database
//! does not answer. Whatever is dropped is counted in `ledger_writes_total{state}` and logged.

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
        };
        LedgerSink {
            queue: DeliveryQueue::start("ledger", policy, writer, registry, "ledger_writes"),
            archive,
        }
    }
}

impl LedgerSink {
    /// The write queue's counters.
    pub fn stats(&self) -> Arc<crate::sink::queue::DeliveryStats> {
        self.queue.stats()
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
                FactKind::ConferenceRecorded {
                    url,
                    duration_secs,
                    copy,
                } => Some(("conference", url, *duration_secs, copy)),
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
}

#[async_trait]
impl Deliver<Queued> for Writer {
    async fn attempt(&self, write: &Queued) -> Attempt {
        self.attempt_many(std::slice::from_ref(write)).await
    }

    async fn attempt_many(&self, queued: &[Queued]) -> Attempt {
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
