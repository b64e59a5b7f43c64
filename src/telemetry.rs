//! Logging: tracing spans and events, pretty for people or JSON for collectors, written by a
//! non-blocking writer (tracing-appender): a request only hands its lines to a bounded buffer,
//! and a background thread writes them to stderr. Lines that would not fit in the buffer are
//! dropped rather than slow a caller; they are counted (`log_lines_dropped_total` in `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use actix_web::http::Method;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Lines buffered before new ones are dropped.
const BUFFERED_LINES: usize = 16 * 1024;

/// The dropped-line counter of the installed writer, once [`init`] ran.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the log writer's thread; dropping it flushes what is buffered (at exit).
#[must_use = "logs are flushed when this is dropped: keep it until the process ends"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`. Calling it twice
/// (as tests may) keeps the first.
pub fn init(settings: &LogSettings) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("switchboard-log")
        .finish(std::io::stderr());
    let counter = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if installed.is_err() {
        return LogGuard { _writer: None };
    }
    let _ = DROPPED.set(counter);
    LogGuard {
        _writer: Some(guard),
    }
}

/// Registers `log_lines_dropped`, read at scrape time (0 until [`init`] installed the writer).
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(DroppedLines));
}

#[derive(Debug)]
struct DroppedLines;

impl Collector for DroppedLines {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let dropped = DROPPED.get().map_or(0, |c| c.dropped_lines() as u64);
        let c = ConstCounter::new(dropped);
        let help = "Log lines dropped because the log writer could not keep up";
        c.encode(enc.encode_descriptor("log_lines_dropped", help, None, c.metric_type())?)
    }
}

/// Request ids: a counter, cheap enough for every request (the call's CallSid, recorded on the
/// same span, is what ties a request to a call).
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// The span of one HTTP request: method, path, a request id, and (recorded later) the status and
/// the CallSid. It records the path but never the query string: the provider's GET voice request
/// carries the caller's number there, which must not reach the logs when numbers are masked.
pub fn request_span(method: &Method, path: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        %method,
        path,
        request_id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed),
        call_sid = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

/// Names the call the current request is about, on its span (every line logged while handling it
/// carries the CallSid).
pub fn record_call(sid: &str) {
    tracing::Span::current().record("call_sid", sid);
}
