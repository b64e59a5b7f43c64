//! Callbacks the provider does not wait on for a document: status and recording callbacks, and
//! the Call Control events of the agents' own calls. Callbacks are answered 200 (Telnyx sends
//! anything else to the failover URL); one that arrives while the call store does not answer is
//! kept and applied when it answers again ([`crate::service`]).

use std::panic::AssertUnwindSafe;

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::FutureExt;

use super::boundary::{Verified, WebhookError};
use super::{own_params, Context};
use crate::agents::own_calls::Envelope;
use crate::call::Event;
use crate::domain::CallSid;
use crate::webhook::{self, BadRequest, Params};

pub(super) async fn status(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    callback(&req, &body, &cx, |p, _| webhook::status(p)).await
}

/// Conference mode: status callbacks of the organizers' calls.
pub(super) async fn organizer_status(
    req: HttpRequest,
    body: Verified,
    cx: Data<Context>,
) -> HttpResponse {
    callback(&req, &body, &cx, webhook::organizer_status).await
}

/// Conference mode: the rooms' status callbacks (join, leave, start, end).
pub(super) async fn room(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    callback(&req, &body, &cx, webhook::room).await
}

pub(super) async fn recording(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    callback(&req, &body, &cx, webhook::recording).await
}

async fn callback(
    req: &HttpRequest,
    body: &Verified,
    cx: &Context,
    parse: impl FnOnce(&Params, &Params) -> Result<(CallSid, Event), BadRequest>,
) -> HttpResponse {
    match apply(req, body, cx, parse).await {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(e) => e.respond(body.kind, req, cx),
    }
}

async fn apply(
    req: &HttpRequest,
    body: &Verified,
    cx: &Context,
    parse: impl FnOnce(&Params, &Params) -> Result<(CallSid, Event), BadRequest>,
) -> Result<(), WebhookError> {
    let p = body.params(req)?;
    let (sid, event) = parse(&p, &own_params(req))?;
    crate::telemetry::record_call(sid.as_str());
    let at = cx.service.now();
    let applied = AssertUnwindSafe(cx.service.apply(&sid, &event))
        .catch_unwind()
        .await
        .map_err(|_| WebhookError::Internal)?;
    match applied {
        Ok(_) => Ok(()),
        // Nothing is lost while the store is away: the callback waits for it.
        Err(e) => {
            cx.service.defer(sid, event, at);
            Err(WebhookError::StoreUnavailable(e))
        }
    }
}

/// Call Control webhooks of the agents' SIP connections (their own outbound calls).
pub(super) async fn telnyx_events(
    req: HttpRequest,
    body: Verified,
    cx: Data<Context>,
) -> HttpResponse {
    let handled = match serde_json::from_slice::<Envelope>(&body.body) {
        Ok(envelope) => match cx.service.agent_call(&envelope.data).await {
            Ok(handled) => {
                tracing::debug!(event_type = %envelope.data.event_type, id = envelope.data.id.as_deref(), ?handled, "Call Control event");
                Ok(())
            }
            Err(e) => Err(BadRequest::Json(e.to_string())),
        },
        Err(e) => Err(BadRequest::Json(e.to_string())),
    };
    match handled {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(e) => WebhookError::from(e).respond(body.kind, &req, &cx),
    }
}
