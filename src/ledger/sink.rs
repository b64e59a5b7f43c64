//! The ledger as a sink: each call fact becomes an [`Entry`], queued (bounded, ordered, off the
//! call path) and written by one worker, retried while the database does not answer. Whatever
//! is dropped is counted in `ledger_writes_total{state}` and logged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::registry::Registry;

use super::archive::{Archive, Job};
use super::{Entry, Keep, Ledger, LegEntry, Write};
use crate::call::FactKind;
use crate::sink::queue::{Attempt, Deliver, DeliveryPolicy, DeliveryQueue};
use crate::sink::{Record, Sink};
use crate::time::Clock;

pub struct LedgerSink {
    queue: DeliveryQueue<Write>,
    numbers: Keep,
    /// Where voicemail recordings go to be downloaded (`None`: not archived).
    archive: Option<Arc<Archive>>,
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
        let writer = Writer { ledger, clock };
        LedgerSink {
            queue: DeliveryQueue::start("ledger", policy, writer, registry, "ledger_writes"),
            numbers,
            archive,
        }
    }
}

#[async_trait]
impl Sink for LedgerSink {
    fn accept(&self, record: &Record) {
        if let Record::Leg { sid, at, fact, .. } = record {
            self.queue.push(Write::Leg(LegEntry {
                call_sid: sid.as_str().to_owned(),
                at: *at,
                fact: fact.clone(),
            }));
        }
        if let Record::Call { sid, at, fact } = record {
            self.queue.push(Write::Call(Box::new(Entry::of(
                sid,
                *at,
                fact,
                &self.numbers,
            ))));
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
}

#[async_trait]
impl Deliver<Write> for Writer {
    async fn attempt(&self, write: &Write) -> Attempt {
        self.attempt_many(std::slice::from_ref(write)).await
    }

    async fn attempt_many(&self, writes: &[Write]) -> Attempt {
        match self.ledger.write_all(writes, self.clock.now_ms()).await {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Retry {
                after: None,
                reason: e.to_string(),
            },
        }
    }
}
