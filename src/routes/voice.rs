//! The requests the provider waits on for a document: the voice URL, the Dial action, the
//! menu's action, the Record action. Whatever happens, the caller gets a valid document with a 200: a bad request, a
//! store that does not answer, even a panic, is answered with the apology (sorry, then take a
//! message), never dead air ([`WebhookError`]).

use std::panic::AssertUnwindSafe;

use actix_web::http::StatusCode;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::FutureExt;

use super::boundary::{Verified, WebhookError};
use super::{own_params, xml, Context};
use crate::webhook;

#[derive(Clone, Copy, Debug)]
enum Voice {
    Inbound,
    Dial,
    Menu,
    Screen,
    ScreenAnswer,
    RecordEnded,
    Organizer,
    OrganizerAnswer,
    RoomLeft,
    Resume,
}

pub(super) async fn inbound(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Inbound, &req, &body, &cx).await
}

pub(super) async fn dial(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Dial, &req, &body, &cx).await
}

pub(super) async fn menu(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Menu, &req, &body, &cx).await
}

pub(super) async fn screen(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Screen, &req, &body, &cx).await
}

pub(super) async fn screen_answer(
    req: HttpRequest,
    body: Verified,
    cx: Data<Context>,
) -> HttpResponse {
    voice(Voice::ScreenAnswer, &req, &body, &cx).await
}

pub(super) async fn voicemail(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::RecordEnded, &req, &body, &cx).await
}

/// Conference mode: an organizer's call answered; its document.
pub(super) async fn organizer(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Organizer, &req, &body, &cx).await
}

/// Conference mode: the key an organizer pressed.
pub(super) async fn organizer_answer(
    req: HttpRequest,
    body: Verified,
    cx: Data<Context>,
) -> HttpResponse {
    voice(Voice::OrganizerAnswer, &req, &body, &cx).await
}

/// Conference mode: the caller's `<Dial>` into the room ended.
pub(super) async fn room_left(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::RoomLeft, &req, &body, &cx).await
}

/// Conference mode: the caller, moved out of the room by the REST API, gets its call's document
/// (voicemail).
pub(super) async fn resume(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Resume, &req, &body, &cx).await
}

/// Conference mode: an organizer's time in the room is over; their call hangs up.
pub(super) async fn organizer_left(_body: Verified) -> HttpResponse {
    xml(
        StatusCode::OK,
        crate::texml::Response::new(vec![crate::texml::Verb::Hangup])
            .to_xml()
            .unwrap_or_default(),
    )
}

/// Conference mode: what the caller hears while waiting (the hold audio, looped).
pub(super) async fn hold(_body: Verified, cx: Data<Context>) -> HttpResponse {
    xml(StatusCode::OK, cx.renderer.hold())
}

/// Conference mode: "NAME is joining this call", played to the caller. Whatever goes wrong, an
/// empty document: an announcement must never hang anyone up.
pub(super) async fn announce(req: HttpRequest, body: Verified, cx: Data<Context>) -> HttpResponse {
    let empty = || {
        crate::texml::Response::default()
            .to_xml()
            .unwrap_or_default()
    };
    let document = match webhook::announce(&own_params(&req)) {
        Ok((sid, event)) => match AssertUnwindSafe(cx.service.apply(&sid, &event))
            .catch_unwind()
            .await
        {
            Ok(Ok((reply, line))) => cx.renderer.render_for(&line, &reply),
            _ => empty(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "announcement request not understood");
            empty()
        }
    };
    let _ = body;
    xml(StatusCode::OK, document)
}

async fn voice(kind: Voice, req: &HttpRequest, body: &Verified, cx: &Context) -> HttpResponse {
    match document(kind, req, body, cx).await {
        Ok(document) => xml(StatusCode::OK, document),
        Err(e) => e.respond(body.kind, req, cx),
    }
}

async fn document(
    kind: Voice,
    req: &HttpRequest,
    body: &Verified,
    cx: &Context,
) -> Result<Vec<u8>, WebhookError> {
    let p = body.params(req)?;
    let (sid, event) = match kind {
        Voice::Inbound => webhook::incoming(&p),
        Voice::Dial => webhook::dial_ended(&p, &own_params(req)),
        Voice::Menu => webhook::menu_input(&p, &own_params(req)),
        Voice::Screen => webhook::screen(&p, &own_params(req), false),
        Voice::ScreenAnswer => webhook::screen(&p, &own_params(req), true),
        Voice::RecordEnded => webhook::record_ended(&p),
        Voice::Organizer => webhook::organizer(&p, &own_params(req), false),
        Voice::OrganizerAnswer => webhook::organizer(&p, &own_params(req), true),
        Voice::RoomLeft => webhook::room_left(&p, &own_params(req)),
        Voice::Resume => webhook::resume(&p),
    }?;
    crate::telemetry::record_call(sid.as_str());
    let (reply, line) = AssertUnwindSafe(cx.service.apply(&sid, &event))
        .catch_unwind()
        .await
        .map_err(|_| WebhookError::Internal)??;
    Ok(cx.renderer.render_for(&line, &reply))
}
