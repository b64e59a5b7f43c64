//! Switchboard: a call-center backend that answers Telnyx TeXML (and Twilio TwiML) requests from
//! a per-call state machine.

pub mod audio; // the prompts in audio/, indexed at start and served safely
pub mod call; // the pure call logic: state, events, transition, store
pub mod clock; // injected time
pub mod cluster; // several replicas: the job lease and the shared agent list
pub mod config; // settings: embedded defaults, file, environment; checked at start
pub mod domain; // validated newtypes: CallSid, Party, Endpoint, Agent
pub mod jobs; // agents refresh and balance check, plain async fns
pub mod metrics; // GET /metrics: Prometheus exposition
pub mod notify; // notifications: log lines, Slack Block Kit messages, delivery queue
pub mod outbound; // agents' own calls from Call Control webhooks
pub mod provider; // the Telnyx REST API client
pub mod retry; // Retry-After and backoff, shared by the HTTP clients
pub mod roster; // the agents rung, replaced atomically
pub mod routes; // thin actix handlers
pub mod signature; // webhook signatures: Telnyx Ed25519, Twilio HMAC-SHA1
pub mod simulate; // switchboard simulate: plays calls against any TeXML server
pub mod startup; // Application::build / run
pub mod telemetry; // tracing subscriber
pub mod texml; // typed documents, templates, rendering
pub mod webhook; // provider form fields → typed events
