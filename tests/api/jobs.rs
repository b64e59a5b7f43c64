//! The scheduled jobs against a Telnyx API played by wiremock: called directly, as plain async
//! functions, and through a real server that uses them.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use switchboard::agents::source::{refresh_agents, AgentSource};
use switchboard::agents::Agents;
use switchboard::config::Settings;
use switchboard::domain::{Agent, Endpoint, LineId};
use switchboard::jobs::{check_balance, BalanceState, JobContext, Jobs};
use switchboard::lease::Lease;
use switchboard::provider::Telnyx;
use switchboard::sink::{JobNotice, Record, Sinks};
use switchboard::time::ManualClock;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ringing, spawn_with, test_settings, Collector, T0};

const PROFILE: &str = "1293384261075731499";

fn telnyx_settings(api: &MockServer) -> Settings {
    let mut s = test_settings();
    s.telnyx.api_base_url = format!("{}/v2", api.uri()).parse().expect("url");
    s.telnyx.api_key = Some("KEYfake-test-only".to_owned().into());
    s.telnyx.outbound_voice_profile_id = Some(PROFILE.into());
    s.telnyx.retry_base_ms = 10;
    s
}

fn client(api: &MockServer) -> Telnyx {
    let s = telnyx_settings(api);
    Telnyx::new(&s.telnyx, s.telnyx.api_key.clone().expect("key"))
}

fn source() -> AgentSource {
    AgentSource {
        profile: Some(PROFILE.into()),
        sip_domain: "sip.telnyx.com".into(),
    }
}

fn connection(id: &str, user: Option<&str>, name: &str, active: bool, profile: &str) -> Value {
    json!({
        "id": id,
        "record_type": "credential_connection",
        "active": active,
        "user_name": user,
        "password": "not-a-real-password",
        "connection_name": name,
        "outbound": {"outbound_voice_profile_id": profile, "channel_limit": 10},
        "webhook_api_version": "2",
        "created_at": "2026-01-01T00:00:00Z"
    })
}

fn page(number: u32, total: u32, data: Vec<Value>) -> Value {
    json!({
        "data": data,
        "meta": {"page_number": number, "page_size": 250, "total_pages": total, "total_results": 7}
    })
}

/// Three pages: four agents on the profile, one on another profile, one inactive, one unusable.
async fn mount_three_pages(api: &MockServer) {
    let pages = [
        vec![
            connection("1001", Some("ada"), "Ada Lovelace", true, PROFILE),
            connection("1002", Some("other"), "Other Team", true, "999"),
            connection("1003", Some("grace"), "Grace Hopper", true, PROFILE),
        ],
        vec![
            connection("1004", Some("old"), "Gone Agent", false, PROFILE),
            connection("1005", Some("alan"), "Alan Turing", true, PROFILE),
        ],
        vec![
            connection(
                "1006",
                Some("katherine"),
                "Katherine Johnson",
                true,
                PROFILE,
            ),
            connection("1007", None, "No User Name", true, PROFILE),
        ],
    ];
    for (i, data) in pages.into_iter().enumerate() {
        let n = i as u32 + 1;
        Mock::given(method("GET"))
            .and(path("/v2/credential_connections"))
            .and(query_param("page[number]", n.to_string()))
            .and(header("authorization", "Bearer KEYfake-test-only"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(n, 3, data)))
            .expect(1..)
            .named(format!("connections page {n}"))
            .mount(api)
            .await;
    }
}

/// The jobs of `settings`, with an empty roster and a collector as their only sink.
fn jobs_for(settings: &Settings) -> (Jobs, Arc<Agents>, Arc<Collector>) {
    let roster = Arc::new(Agents::new(main(), vec![]));
    let collector = Arc::new(Collector::default());
    let cx = JobContext {
        agents: roster.clone(),
        sinks: Sinks::new(vec![collector.clone()]),
        clock: Arc::new(ManualClock::at(T0)),
        lease: Arc::new(Lease::solo()),
    };
    let key = settings.telnyx.api_key.clone().expect("api key set");
    (
        Jobs::new(settings, key, cx, &mut Registry::default()),
        roster,
        collector,
    )
}

fn main() -> LineId {
    LineId::main()
}

fn names(roster: &Agents) -> Vec<(String, String, Option<String>)> {
    roster
        .all(&main())
        .iter()
        .map(|a| {
            (
                a.name.to_string(),
                a.endpoint.as_str().to_owned(),
                a.connection_id.as_deref().map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test]
async fn three_pages_of_connections_become_one_agent_list() {
    let api = MockServer::start().await;
    mount_three_pages(&api).await;
    let roster = Agents::new(main(), vec![]);
    let change = refresh_agents(&client(&api), &roster, &source())
        .await
        .expect("refresh")
        .change;
    let sip = |u: &str| format!("sip:{u}@sip.telnyx.com");
    assert_eq!(
        names(&roster),
        vec![
            ("Ada Lovelace".into(), sip("ada"), Some("1001".into())),
            ("Alan Turing".into(), sip("alan"), Some("1005".into())),
            ("Grace Hopper".into(), sip("grace"), Some("1003".into())),
            (
                "Katherine Johnson".into(),
                sip("katherine"),
                Some("1006".into())
            ),
        ]
    );
    assert!(
        matches!(change, Some(JobNotice::AgentsChanged { ref added, ref removed }) if added.len() == 4 && removed.is_empty())
    );
    // The same list again changes nothing.
    let again = refresh_agents(&client(&api), &roster, &source())
        .await
        .expect("refresh")
        .change;
    assert_eq!(again, None);
}

#[tokio::test]
async fn the_api_down_keeps_the_last_good_list_after_bounded_retries() {
    let api = MockServer::start().await;
    let roster = Agents::new(
        main(),
        vec![Agent::new(
            "Last Known",
            Endpoint::sip("sip:last@sip.telnyx.com").expect("sip"),
        )
        .expect("agent")],
    );
    let ringing_before = roster.all(&main());
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "errors": [{"code": "90000", "title": "Service unavailable", "detail": "try later"}]
        })))
        // One attempt and max_retries (2) more: bounded.
        .expect(3)
        .mount(&api)
        .await;
    let err = refresh_agents(&client(&api), &roster, &source())
        .await
        .expect_err("down");
    assert_eq!(
        err.to_string(),
        "Telnyx API answered 503: 90000 Service unavailable try later"
    );
    assert_eq!(roster.all(&main()).len(), 1);
    assert_eq!(&*roster.all(&main())[0].name, "Last Known");
    assert!(
        Arc::ptr_eq(&ringing_before, &roster.all(&main())),
        "untouched"
    );
}

#[tokio::test]
async fn a_rate_limited_listing_waits_and_succeeds() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(
                    json!({"errors": [{"code": "10011", "title": "Too many requests"}]}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            1,
            1,
            vec![connection(
                "1001",
                Some("ada"),
                "Ada Lovelace",
                true,
                PROFILE,
            )],
        )))
        .mount(&api)
        .await;
    let started = std::time::Instant::now();
    let roster = Agents::new(main(), vec![]);
    refresh_agents(&client(&api), &roster, &source())
        .await
        .expect("refresh");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "honoured Retry-After"
    );
    assert_eq!(roster.all(&main()).len(), 1);
}

async fn set_balance(api: &MockServer, available: &str) {
    api.reset().await;
    Mock::given(method("GET"))
        .and(path("/v2/balance"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "record_type": "balance",
            "pending": "10.00",
            "balance": "300.00",
            "credit_limit": "100.00",
            "available_credit": available,
            "currency": "USD"
        }})))
        .mount(api)
        .await;
}

#[tokio::test]
async fn the_balance_crossing_below_staying_low_and_recovering_alerts_exactly() {
    let api = MockServer::start().await;
    let telnyx = client(&api);
    let state = Mutex::new(BalanceState::default());
    let threshold = "80.00".parse().expect("decimal");
    let day = Duration::from_secs(86_400);
    let hour = 3_600_000;
    let mut alerts = Vec::new();
    for (available, at) in [
        ("400.00", 0),
        ("80.00", hour),
        ("79.99", 2 * hour),
        ("42.10", 3 * hour),
        ("12.00", 20 * hour),
        ("11.00", 26 * hour),
        ("10.00", 27 * hour),
        ("150.00", 28 * hour),
        ("160.00", 29 * hour),
    ] {
        set_balance(&api, available).await;
        let (_, alert) = check_balance(&telnyx, &state, threshold, day, T0 + at)
            .await
            .expect("balance");
        alerts.push(alert.map(|a| match a {
            JobNotice::BalanceLow {
                available,
                reminder,
                ..
            } => format!("low {available} reminder={reminder}"),
            JobNotice::BalanceRecovered { available, .. } => format!("recovered {available}"),
            other => format!("{other:?}"),
        }));
    }
    assert_eq!(
        alerts,
        [
            None,
            None,
            Some("low 79.99 reminder=false".into()),
            None,
            None,
            Some("low 11.00 reminder=true".into()),
            None,
            Some("recovered 150.00".into()),
            None,
        ]
    );
}

#[tokio::test]
async fn the_jobs_announce_changes_and_repeated_failures() {
    let api = MockServer::start().await;
    mount_three_pages(&api).await;
    let settings = telnyx_settings(&api);
    let (jobs, roster, collector) = jobs_for(&settings);
    // The first load is logged, not announced.
    jobs.run_agents_refresh().await;
    assert_eq!(roster.all(&main()).len(), 4);
    // Alan leaves, Mary joins.
    api.reset().await;
    Mock::given(method("GET"))
        .and(path("/v2/credential_connections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            1,
            1,
            vec![
                connection("1001", Some("ada"), "Ada Lovelace", true, PROFILE),
                connection("1003", Some("grace"), "Grace Hopper", true, PROFILE),
                connection(
                    "1006",
                    Some("katherine"),
                    "Katherine Johnson",
                    true,
                    PROFILE,
                ),
                connection("1008", Some("mary"), "Mary Jackson", true, PROFILE),
            ],
        )))
        .mount(&api)
        .await;
    jobs.run_agents_refresh().await;
    // Then the API breaks: the third failure in a row is announced, once.
    api.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&api)
        .await;
    for _ in 0..4 {
        jobs.run_agents_refresh().await;
    }
    assert_eq!(roster.all(&main()).len(), 4, "the last good list stays");
    let notices: Vec<JobNotice> = collector
        .take()
        .into_iter()
        .filter_map(|n| match n {
            Record::Job { kind, .. } => Some(kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        notices,
        [
            JobNotice::AgentsChanged {
                added: vec!["Mary Jackson".into()],
                removed: vec!["Alan Turing".into()],
            },
            JobNotice::JobFailing {
                job: "agents refresh",
                failures: 3,
                error: "Telnyx API answered 500: Internal Server Error".into(),
            },
        ]
    );
}

#[tokio::test]
async fn a_server_with_an_api_key_rings_the_agents_from_the_api() {
    let api = MockServer::start().await;
    mount_three_pages(&api).await;
    let mock_uri = api.uri();
    let app = spawn_with(move |s| {
        s.telnyx.api_base_url = format!("{mock_uri}/v2").parse().expect("url");
        s.telnyx.api_key = Some("KEYfake-test-only".to_owned().into());
        s.telnyx.agents_from_api = true;
        s.telnyx.outbound_voice_profile_id = Some(PROFILE.into());
    })
    .await;
    assert_eq!(
        ringing(&app.inbound("CA-api", "+12025550142").await),
        [
            "sip:ada@sip.telnyx.com",
            "sip:alan@sip.telnyx.com",
            "sip:grace@sip.telnyx.com",
            "sip:katherine@sip.telnyx.com",
        ],
        "the static demo agents are not rung"
    );
}

#[tokio::test]
async fn agents_who_cannot_receive_calls_are_left_out_and_said_once() {
    let api = MockServer::start().await;
    let with_inbound = |id: &str, user: &str, name: &str, pref: &str| {
        let mut c = connection(id, Some(user), name, true, PROFILE);
        c["inbound"] = json!({"sip_uri_calling_preference": pref});
        c
    };
    let data = vec![
        with_inbound("2001", "ada", "Ada Lovelace", "unrestricted"),
        with_inbound("2002", "grace", "Grace Hopper", "disabled"),
        with_inbound("2003", "9lives", "Nine Lives", "unrestricted"),
        connection("2004", Some("alan"), "Alan Turing", true, PROFILE),
    ];
    Mock::given(method("GET"))
        .and(path("/v2/credential_connections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1, 1, data)))
        .mount(&api)
        .await;
    let settings = telnyx_settings(&api);
    let (jobs, roster, collector) = jobs_for(&settings);
    jobs.run_agents_refresh().await;
    jobs.run_agents_refresh().await;
    let rung: Vec<String> = roster
        .all(&main())
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(
        rung,
        ["Ada Lovelace", "Alan Turing"],
        "a connection that does not say is rung"
    );
    let said: Vec<JobNotice> = collector
        .take()
        .into_iter()
        .filter_map(|r| match r {
            Record::Job { kind, .. } => Some(kind),
            _ => None,
        })
        .collect();
    assert_eq!(said.len(), 1, "said once, not at every refresh: {said:?}");
    let JobNotice::AgentsUnreachable { agents } = &said[0] else {
        panic!("{said:?}");
    };
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0].0, "Grace Hopper");
    assert!(agents[0].1.contains("SIP URI calling is disabled"));
    assert_eq!(agents[1].0, "Nine Lives");
    assert!(agents[1].1.contains("starts with a digit"));
}

#[tokio::test]
async fn an_api_key_kept_for_the_balance_does_not_replace_the_static_agents() {
    let api = MockServer::start().await;
    let mock_uri = api.uri();
    let app = spawn_with(move |s| {
        s.telnyx.api_base_url = format!("{mock_uri}/v2").parse().expect("url");
        s.telnyx.api_key = Some("KEYfake-test-only".to_owned().into());
        s.telnyx.agents_from_api = false;
    })
    .await;
    assert_eq!(
        ringing(&app.inbound("CA-static", "+12025550142").await).len(),
        3,
        "the demo's three static agents"
    );
    let asked = api.received_requests().await.unwrap_or_default();
    assert!(asked
        .iter()
        .all(|r| r.url.path() != "/v2/credential_connections"));
}
