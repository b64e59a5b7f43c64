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
    }?;
    crate::telemetry::record_call(sid.as_str());
    let (reply, line) = AssertUnwindSafe(cx.service.apply(&sid, &event))
        .catch_unwind()
        .await
        .map_err(|_| WebhookError::Internal)??;
    Ok(cx.renderer.render_for(&line, &reply))
}
