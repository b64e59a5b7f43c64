//! The provider's REST API, faked on loopback for conference calls (`--provider-api`): the
//! server under test places the organizers' calls, ends them, announces, moves the caller and
//! starts recordings through it, and the simulator plays the other side of each request. It
//! answers both dialects: Telnyx's TeXML API (`/v2/texml/Accounts/…`, JSON; placing a call
//! answers without the new call's id, as Telnyx's spec says) and Twilio's
//! (`/2010-04-01/Accounts/….json`, forms; placing answers with `sid`). `GET /rec/{name}` serves
//! a recording's bytes for the server's archive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// A call the server asked the API to place.
#[derive(Debug, Clone)]
pub struct PlacedCall {
    /// Its CallSid (the simulator's; Twilio's answer says it, Telnyx's does not).
    pub leg: String,
    pub to: String,
    /// Its document, requested when it answers.
    pub url: String,
    pub status_callback: String,
}

/// One request the API received.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub fields: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    /// Placed calls by the caller's CallSid their document URL names (`call=`).
    placed: Mutex<HashMap<String, Vec<PlacedCall>>>,
    requests: Mutex<Vec<ApiRequest>>,
    changed: Notify,
    next: AtomicU64,
}

pub struct FakeApi {
    /// `http://host:port`.
    pub base: String,
    state: Arc<State>,
    server: actix_web::dev::ServerHandle,
}

/// A request's fields, from JSON (Telnyx) or a form (Twilio; a repeated name's values joined
/// with spaces).
fn fields(body: &[u8]) -> HashMap<String, String> {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        return map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect();
    }
    let mut out: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        out.entry(k.into_owned())
            .and_modify(|before| {
                before.push(' ');
                before.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    out
}

async fn handle(req: HttpRequest, body: Bytes, state: Data<State>) -> HttpResponse {
    let path = req.path().to_owned();
    let method = req.method().as_str().to_owned();
    if method == "GET" && path.starts_with("/rec/") {
        state.changed.notify_waiters();
        // A short "recording": some bytes the archive can keep.
        let audio: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 251) as u8).collect();
        return HttpResponse::Ok().content_type("audio/mpeg").body(audio);
    }
    let fields = fields(&body);
    let twilio = path.starts_with("/2010-04-01/");
    let n = state.next.fetch_add(1, Ordering::Relaxed);
    let answer = if method == "POST" && (path.ends_with("/Calls") || path.ends_with("/Calls.json"))
    {
        let url = fields.get("Url").cloned().unwrap_or_default();
        let caller = url::Url::parse(&url)
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "call")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        let placed = PlacedCall {
            leg: format!("SIMLEG{n}"),
            to: fields.get("To").cloned().unwrap_or_default(),
            url,
            status_callback: fields.get("StatusCallback").cloned().unwrap_or_default(),
        };
        let answer = match twilio {
            true => json!({ "sid": placed.leg, "status": "queued", "to": placed.to }),
            false => json!({ "status": "queued", "to": placed.to, "from": fields.get("From") }),
        };
        state
            .placed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(caller)
            .or_default()
            .push(placed);
        answer
    } else if method == "POST" && path.ends_with("/Recordings.json") {
        json!({ "sid": format!("RESIM{n}"), "status": "in-progress" })
    } else {
        json!({})
    };
    state
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(ApiRequest {
            method,
            path,
            fields,
        });
    state.changed.notify_waiters();
    HttpResponse::Ok().json(answer)
}

impl FakeApi {
    /// Listens on `listen` (`127.0.0.1:9099`; port 0 picks one).
    pub fn start(listen: &str) -> Result<FakeApi, String> {
        let state = Data::new(State::default());
        let shared = state.clone();
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| format!("--provider-api {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(actix_web::web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(FakeApi {
            base: format!("http://{addr}"),
            state: state.into_inner(),
            server: handle,
        })
    }

    /// Stops listening (the address is free again when this returns), once the server has
    /// been quiet for a second (at most five): it may still be downloading a recording.
    pub async fn stop(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let changed = self.state.changed.notified();
            let quiet = tokio::time::timeout(Duration::from_secs(1), changed).await;
            if quiet.is_err() || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        self.server.stop(true).await;
    }

    /// The calls placed for caller `call`, once there are at least `n` (or whatever there is
    /// after `within`).
    pub async fn placed(&self, call: &str, n: usize, within: Duration) -> Vec<PlacedCall> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.state.changed.notified();
            let now: Vec<PlacedCall> = self
                .state
                .placed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(call)
                .cloned()
                .unwrap_or_default();
            if now.len() >= n || tokio::time::Instant::now() >= deadline {
                return now;
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    /// The first request that satisfies `wanted`, waiting up to `within`.
    pub async fn request(
        &self,
        wanted: impl Fn(&ApiRequest) -> bool,
        within: Duration,
    ) -> Option<ApiRequest> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.state.changed.notified();
            let found = self
                .state
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|r| wanted(r))
                .cloned();
            if found.is_some() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }
}
