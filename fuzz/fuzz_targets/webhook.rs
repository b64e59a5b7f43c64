//! Any bytes as a provider request: form parsing into events, the state machine applying them,
//! and Call Control JSON. Must never panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use switchboard::call::{Context, MemoryStore, Targets};
use switchboard::domain::{Agent, Endpoint};
use switchboard::outbound::{Envelope, OutboundCalls};
use switchboard::roster::Roster;
use switchboard::webhook::{self, Params};

fn agents() -> &'static Targets {
    static AGENTS: OnceLock<Targets> = OnceLock::new();
    AGENTS.get_or_init(|| {
        let sip = Endpoint::sip("sip:ada@x.example").expect("sip");
        Arc::from(vec![Agent::new("Ada", sip).expect("agent")])
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the query string's length: the rest is the body.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (query, body) = data.split_at(split);
    let store = MemoryStore::new(60, 3600);
    let ctx = Context {
        rounds: 2,
        available: agents(),
        accepting: true,
    };
    if let (Ok(p), Ok(q)) = (Params::parse(body), Params::parse(query)) {
        let parsed = [
            webhook::incoming(&p),
            webhook::status(&p),
            webhook::dial_ended(&p, &q),
            webhook::record_ended(&p),
            webhook::recording(&p, &q),
        ];
        for (i, (sid, event)) in parsed.into_iter().flatten().enumerate() {
            let _ = store.apply_now(&sid, &event, i as u64 * 1000, &ctx);
        }
        let _ = store.sweep_now(u64::MAX);
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
        let roster = Roster::new(agents().to_vec());
        let calls = OutboundCalls::new(60, 3600);
        let _ = calls.apply(&envelope.data, 0, &roster);
        let _ = calls.sweep(u64::MAX, &roster);
    }
});
