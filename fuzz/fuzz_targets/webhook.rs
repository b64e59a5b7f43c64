//! Any bytes as a provider request: form parsing into events, the state machine applying them,
//! and Call Control JSON. Must never panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use switchboard::agents::own_calls::{Envelope, OwnCalls};
use switchboard::agents::Agents;
use switchboard::call::{transition, Event, Expiry, MemoryStore, Policy, Snapshot, Targets};
use switchboard::domain::{Agent, Endpoint, LineId};
use switchboard::webhook::{self, Params};

fn agents() -> &'static Targets {
    static AGENTS: OnceLock<Targets> = OnceLock::new();
    AGENTS.get_or_init(|| {
        let sip = Endpoint::sip("sip:ada@x.example").expect("sip");
        Targets::new(Arc::from(vec![Agent::new("Ada", sip).expect("agent")])).expect("one")
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the query string's length: the rest is the body.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (query, body) = data.split_at(split);
    let store = MemoryStore::new(Expiry::from_secs(60, 3600));
    let policy = Policy::default();
    let snapshot = Snapshot::ringing(Some(agents().clone()));
    if let (Ok(p), Ok(q)) = (Params::parse(body), Params::parse(query)) {
        let parsed = [
            webhook::incoming(&p),
            webhook::status(&p),
            webhook::dial_ended(&p, &q),
            webhook::menu_input(&p, &q),
            webhook::screen(&p, &q, false),
            webhook::screen(&p, &q, true),
            webhook::record_ended(&p),
            webhook::recording(&p, &q),
        ];
        let expired = store.due_now(u64::MAX);
        let events = parsed.into_iter().flatten();
        let expiries = expired.into_iter().map(|sid| (sid, Event::Expired));
        for (i, (sid, event)) in events.chain(expiries).enumerate() {
            let now = i as u64 * 1000;
            let _ = store.apply_now(&sid, now, &|call| {
                transition(&sid, call, &event, now, &policy, &snapshot)
            });
        }
        let _ = store.sweep_now(u64::MAX);
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
        let roster = Agents::new(LineId::main(), agents().to_vec());
        let calls = OwnCalls::new(Expiry::from_secs(60, 3600), Default::default(), 14_400);
        let _ = calls.apply(&envelope.data, 0, &roster);
        let _ = calls.sweep(u64::MAX, &roster);
    }
});
