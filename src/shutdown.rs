//! Stopping on request: SIGTERM (Kubernetes), SIGINT (Ctrl-C), or a handle (tests, embedding).
//! What a stop does, in order, is [`crate::startup::Application::run_until_stopped`]'s.

use std::sync::Arc;

/// Starts the same shutdown as SIGTERM (for tests and embedding).
#[derive(Clone, Default)]
pub struct ShutdownHandle(Arc<tokio::sync::Notify>);

impl ShutdownHandle {
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

/// Waits for SIGTERM (Kubernetes), SIGINT (Ctrl-C) or the handle; says which.
pub(crate) async fn stop_requested(handle: &ShutdownHandle) -> &'static str {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn next(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = next(&mut term) => "SIGTERM",
        _ = next(&mut int) => "SIGINT",
        _ = handle.0.notified() => "shutdown handle",
    }
}
