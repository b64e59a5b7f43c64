//! The hot pieces of the call path: parsing a webhook, one transition, rendering a document.
//!   cargo bench --bench hot

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard::audio::AudioDir;
use switchboard::call::{transition, CallStatus, Event, Policy, Reply, Snapshot, Targets};
use switchboard::config::Settings;
use switchboard::domain::{Agent, CallSid, Endpoint, Party};
use switchboard::texml::prompts::{Prompts, EMBEDDED};
use switchboard::texml::{Renderer, Urls};
use switchboard::webhook::{self, Params};

/// A status callback as Telnyx sends it (about 40 fields).
const STATUS: &str = "AccountSid=b0d3a4a8-0000-4000-8000-000000000000&CallSid=v3%3AaBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-leg&CallSidLegacy=v3%3Alegacy&ParentCallSid=v3%3AaBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789&ParentCallSidLegacy=v3%3Alegacy-parent&CallStatus=in-progress&CallbackSource=call-progress-events&ConnectionId=1494404757140276705&From=%2B18005550100&To=sip%3Aada%40switchboard-demo.sip.example.com&SequenceNumber=2&Timestamp=2026-11-21+12%3A00%3A07.000000Z&CallInitiatedAt=2026-11-21+12%3A00%3A00.000000Z&CallerId=%2B18005550100&CallDuration=0&ShakenStirAttestation=A&ShakenStirValidated=true";

fn agents() -> Targets {
    let agents = ["ada", "grace", "alan", "katherine", "mary"]
        .iter()
        .map(|u| {
            let sip =
                Endpoint::sip(&format!("sip:{u}@switchboard-demo.sip.example.com")).expect("sip");
            Agent::new(u, sip).expect("agent")
        })
        .collect::<Vec<_>>();
    Targets::new(Arc::from(agents)).expect("five agents")
}

fn bench(c: &mut Criterion) {
    c.bench_function("parse a status callback", |b| {
        b.iter(|| {
            let params = Params::parse(black_box(STATUS.as_bytes())).expect("form");
            webhook::status(&params).expect("valid")
        })
    });

    let available = agents();
    let policy = Policy::default();
    let snapshot = Snapshot::ringing(Some(available.clone()));
    let sid = CallSid::parse("v3:bench").expect("sid");
    let incoming = Event::Incoming {
        from: Party::parse("+12025550142").expect("party"),
        to: Party::parse("+18005550100").expect("party"),
        account: None,
    };
    let ringing = transition(&sid, None, &incoming, 0, &policy, &snapshot)
        .next
        .expect("call");
    let answered = Event::LegStatus {
        leg: CallSid::parse("v3:bench-leg").expect("sid"),
        status: CallStatus::InProgress,
        to: Party::parse("sip:ada@switchboard-demo.sip.example.com").expect("party"),
    };
    c.bench_function("transition: a leg answers", |b| {
        b.iter(|| {
            transition(
                &sid,
                Some(black_box(&ringing)),
                black_box(&answered),
                7_000,
                &policy,
                &snapshot,
            )
        })
    });

    let settings = Settings::demo().expect("settings");
    let base = "https://switchboard.example.com".parse().expect("url");
    let urls = Urls::new(&base).expect("url");
    let prompts = Prompts::parse("prompts.toml", EMBEDDED, &AudioDir::default(), &|n| {
        urls.audio(n)
    })
    .expect("templates");
    let renderer = Renderer::new(
        &settings.dial,
        &settings.voicemail,
        &settings.provider,
        urls,
        prompts,
    )
    .expect("renderer");
    let reply = Reply::Ring {
        call: switchboard::domain::CallSid::parse("CA-bench").expect("sid"),
        screen: switchboard::domain::Screen::Numbers,
        round: 1,
        group: 0,
        ring_secs: 20,
        lead: switchboard::call::Lead::Greeting,
        targets: available.clone(),
        caller: Party::parse("+12025550142").expect("party"),
    };
    c.bench_function("render greeting + Dial of 5 agents", |b| {
        b.iter(|| renderer.render(black_box(&reply)))
    });

    // What the call path's timer loop costs each second (the memory store is walked for calls
    // due: unsettled voicemails, conference rooms' timers), with 50,000 calls held.
    let store =
        switchboard::call::MemoryStore::new(switchboard::call::Expiry::from_secs(120, 18_000));
    for n in 0..50_000u32 {
        let sid = CallSid::parse(&format!("v3:held-{n}")).expect("sid");
        store.apply_now(&sid, 0, &|call| {
            transition(&sid, call, &incoming, 0, &policy, &snapshot)
        });
    }
    c.bench_function("due calls among 50,000 held", |b| {
        b.iter(|| store.due_now(black_box(60_000)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
