//! Conference mode's requests to the provider, off the call path. The call core decides what
//! must be asked ([`crate::call::conference::Command`]); the call service puts each request on a
//! bounded queue ([`Requests`]) and answers the provider at once; a background worker sends them
//! through the REST API ([`api::VoiceApi`]), several at a time, and reports what the API said
//! back to the call core (an organizer's call was placed, with its CallSid, or could not be).
//! A full queue drops the request, a failed one is given up after its retries: both are counted
//! (`conference_requests_total`) and logged, and the room's timer still bounds the caller's wait.

pub mod api;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, Semaphore};

use crate::call::conference::{Command, Order, ParticipantChange, CALLER_LABEL};
use crate::call::Event;
use crate::domain::{CallSid, Endpoint};
use crate::texml::Urls;

use api::{ApiError, Fields, VoiceApi};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    order: &'static str,
    result: &'static str,
}

/// The call path's end of the queue.
#[derive(Clone)]
pub struct Requests {
    tx: mpsc::Sender<Command>,
    counts: Family<RequestLabels, Counter>,
}

/// The worker's end.
pub struct Worker {
    rx: mpsc::Receiver<Command>,
    counts: Family<RequestLabels, Counter>,
    api: Arc<VoiceApi>,
    urls: Urls,
    concurrency: usize,
}

/// Where the worker reports what the provider said about a call (the call service).
#[async_trait::async_trait]
pub trait Report: Send + Sync + 'static {
    async fn report(&self, call: &CallSid, event: Event);
}

/// The queue and its worker, with their metrics registered.
pub fn queue(
    api: VoiceApi,
    urls: Urls,
    capacity: usize,
    concurrency: usize,
    registry: &mut Registry,
) -> (Requests, Worker) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let counts = Family::<RequestLabels, Counter>::default();
    registry.register(
        "conference_requests",
        "Conference mode's requests to the provider's REST API, by order and result (sent, failed, dropped)",
        counts.clone(),
    );
    (
        Requests {
            tx,
            counts: counts.clone(),
        },
        Worker {
            rx,
            counts,
            api: Arc::new(api),
            urls,
            concurrency: concurrency.max(1),
        },
    )
}

fn count(counts: &Family<RequestLabels, Counter>, order: &'static str, result: &'static str) {
    counts.get_or_create(&RequestLabels { order, result }).inc();
}

impl Requests {
    /// Queues `command`; never waits. A full queue drops it (counted and logged).
    pub fn send(&self, command: Command) {
        let order = command.order.label();
        if let Err(e) = self.tx.try_send(command) {
            count(&self.counts, order, "dropped");
            let command = match &e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            tracing::error!(call_sid = %command.call, order, "conference request queue full: request dropped");
        }
    }
}

impl Worker {
    /// Sends the queued requests until the queue closes, at most `concurrency` at once.
    pub async fn run(mut self, report: Arc<dyn Report>) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let shared = Arc::new((self.api, self.urls, self.counts));
        while let Some(command) = self.rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let shared = shared.clone();
            let report = report.clone();
            tokio::spawn(async move {
                let (api, urls, counts) = &*shared;
                let order = command.order.label();
                let result = execute(api, urls, &command).await;
                let gone = |e: &ApiError| {
                    e.is_gone()
                        || (matches!(command.order, Order::Hangup { .. })
                            && e.status() == Some(422))
                };
                let failed = match &result {
                    Ok(_) => {
                        count(counts, order, "sent");
                        false
                    }
                    Err(e) if gone(e) => {
                        // Ending a call that already ended: nothing left to do.
                        count(counts, order, "gone");
                        tracing::debug!(call_sid = %command.call, order, error = %e, "conference request: already gone");
                        false
                    }
                    Err(e) => {
                        count(counts, order, "failed");
                        tracing::error!(call_sid = %command.call, order, error = %e, "conference request failed");
                        true
                    }
                };
                let placed = result.ok().flatten();
                // What the call core must hear about: a call placed (or not), a recording
                // started or stopped (or not).
                let report_event = match &command.order {
                    Order::Call { agent, attempt, .. } => Some(Event::OrganizerPlaced {
                        agent: agent.id.clone(),
                        attempt: Some(*attempt),
                        leg: placed.as_deref().and_then(|s| CallSid::parse(s).ok()),
                        placed: !failed,
                    }),
                    Order::Record { on: true, .. } => Some(Event::RecordingResult {
                        start: true,
                        ok: !failed,
                        sid: crate::webhook::plain_id(placed.as_deref()),
                    }),
                    Order::Record {
                        on: false,
                        recording,
                    } if failed => Some(Event::RecordingResult {
                        start: false,
                        ok: false,
                        sid: recording.clone(),
                    }),
                    _ => None,
                };
                if let Some(event) = report_event {
                    report.report(&command.call, event).await;
                }
                drop(permit);
            });
        }
    }
}

/// Sends one command; for a placed call, its CallSid when the provider said it.
async fn execute(
    api: &VoiceApi,
    urls: &Urls,
    command: &Command,
) -> Result<Option<String>, ApiError> {
    let account = command.account.as_deref();
    let call = command.call.as_str();
    match &command.order {
        Order::Call {
            agent,
            attempt,
            from,
            ring_secs,
        } => {
            let attempt = attempt.to_string();
            let pairs = [("call", call), ("agent", &*agent.id), ("n", &attempt)];
            let to = match &agent.endpoint {
                Endpoint::Sip(uri) | Endpoint::Number(uri) => uri,
            };
            api.place_call(
                account,
                to,
                from.as_str(),
                &urls.conference("organizer", &pairs),
                &urls.conference("leg", &pairs),
                *ring_secs,
            )
            .await
        }
        Order::Hangup { leg, answered } => api
            .end_call(account, leg.as_str(), *answered)
            .await
            .map(|()| None),
        Order::Announce { conference, agent } => {
            let pairs = [("call", call), ("agent", &**agent)];
            let fields: Fields = vec![
                ("AnnounceUrl", urls.conference("announce", &pairs)),
                ("AnnounceMethod", "POST".to_owned()),
            ];
            let caller = ["Conferences", conference, "Participants", CALLER_LABEL];
            api.update(account, &caller, &fields).await.map(|()| None)
        }
        Order::Participant {
            conference,
            who,
            change,
        } => {
            let fields: Fields = match change {
                ParticipantChange::Muted(on) => vec![("Muted", on.to_string())],
                ParticipantChange::Held(true) => vec![
                    ("Hold", "true".to_owned()),
                    ("HoldUrl", urls.conference("hold", &[])),
                    ("HoldMethod", "POST".to_owned()),
                ],
                ParticipantChange::Held(false) => vec![("Hold", "false".to_owned())],
            };
            let participant = ["Conferences", conference, "Participants", who];
            api.update(account, &participant, &fields)
                .await
                .map(|()| None)
        }
        Order::Remove { conference, who } => api
            .remove_participant(account, conference, who)
            .await
            .map(|()| None),
        Order::Record { on: true, .. } => {
            api.start_recording(account, call, &urls.recording_conference(&command.call))
                .await
        }
        Order::Record {
            on: false,
            recording,
        } => api
            .stop_recording(account, call, recording.as_deref())
            .await
            .map(|()| None),
        Order::EndRoom { conference } => {
            let fields: Fields = vec![("Status", "completed".to_owned())];
            api.update(account, &["Conferences", conference], &fields)
                .await
                .map(|()| None)
        }
        Order::ToVoicemail => {
            let fields: Fields = vec![
                ("Url", urls.conference("resume", &[])),
                ("Method", "POST".to_owned()),
            ];
            api.update_call(account, call, &fields).await.map(|()| None)
        }
    }
}
