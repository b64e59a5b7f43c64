//! Callbacks the provider does not wait on for a document: status and recording callbacks, and
//! the Call Control events of the agents' own calls. A store that does not answer gets a 503, so
//! the provider retries and nothing is lost meanwhile.

use std::panic::AssertUnwindSafe;

use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::FutureExt;

use super::{bad_request, own_params, provider_params, refusal, Context};
use crate::agents::own_calls::Envelope;
use crate::call::Event;
use crate::domain::CallSid;
use crate::webhook::{self, BadRequest, Params};

pub(super) async fn status(req: HttpRequest, body: Bytes, cx: Data<Context>) -> HttpResponse {
    callback(&req, &body, &cx, |p, _| webhook::status(p)).await
}

pub(super) async fn recording(req: HttpRequest, body: Bytes, cx: Data<Context>) -> HttpResponse {
    callback(&req, &body, &cx, webhook::recording).await
}

async fn callback(
    req: &HttpRequest,
    body: &[u8],
    cx: &Context,
    parse: impl FnOnce(&Params, &Params) -> Result<(CallSid, Event), BadRequest>,
) -> HttpResponse {
    if let Some(refused) = refusal(req, body, cx) {
        return refused;
    }
    let parsed = provider_params(req, body).and_then(|p| parse(&p, &own_params(req)));
    let (sid, event) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(route = req.path(), error = %e, "bad callback refused");
            return bad_request(&e);
        }
    };
    crate::telemetry::record_call(sid.as_str());
    let handled = AssertUnwindSafe(cx.service.apply(&sid, &event))
        .catch_unwind()
        .await;
    match handled {
        Ok(Ok(_)) => HttpResponse::NoContent().finish(),
        // The provider retries a 5xx: nothing is lost while the store is away.
        Ok(Err(e)) => {
            tracing::error!(error = %e, "call state unavailable; the provider will retry");
            HttpResponse::ServiceUnavailable().finish()
        }
        Err(_) => {
            tracing::error!("internal error while applying a callback");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Call Control webhooks of the agents' SIP connections (their own outbound calls).
pub(super) async fn telnyx_events(
    req: HttpRequest,
    body: Bytes,
    cx: Data<Context>,
) -> HttpResponse {
    if let Some(refused) = refusal(&req, &body, &cx) {
        return refused;
    }
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::warn!(error = %e, "bad Call Control event refused");
            return bad_request(&e);
        }
    };
    match cx.service.agent_call(&envelope.data) {
        Ok(handled) => {
            tracing::debug!(event_type = %envelope.data.event_type, id = envelope.data.id.as_deref(), ?handled, "Call Control event");
            HttpResponse::Ok().finish()
        }
        Err(e) => {
            tracing::warn!(error = %e, "bad Call Control event refused");
            bad_request(&e)
        }
    }
}
