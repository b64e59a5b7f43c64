//! The requests the provider waits on for a document: the voice URL, the Dial action, the
//! Record action. Whatever happens, the caller gets a valid document: a bad request, a store
//! that does not answer, even a panic, is answered with the apology (sorry, then take a
//! message), never dead air.

use std::panic::AssertUnwindSafe;

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::FutureExt;

use super::{own_params, provider_params, refusal, xml, Context};
use crate::call::StoreError;
use crate::webhook;

#[derive(Clone, Copy, Debug)]
enum Voice {
    Inbound,
    Dial,
    RecordEnded,
}

pub(super) async fn inbound(req: HttpRequest, body: Bytes, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Inbound, &req, &body, &cx).await
}

pub(super) async fn dial(req: HttpRequest, body: Bytes, cx: Data<Context>) -> HttpResponse {
    voice(Voice::Dial, &req, &body, &cx).await
}

pub(super) async fn voicemail(req: HttpRequest, body: Bytes, cx: Data<Context>) -> HttpResponse {
    voice(Voice::RecordEnded, &req, &body, &cx).await
}

async fn voice(kind: Voice, req: &HttpRequest, body: &[u8], cx: &Context) -> HttpResponse {
    if let Some(refused) = refusal(req, body, cx) {
        return refused;
    }
    let parsed = provider_params(req, body).and_then(|p| match kind {
        Voice::Inbound => webhook::incoming(&p),
        Voice::Dial => webhook::dial_ended(&p, &own_params(req)),
        Voice::RecordEnded => webhook::record_ended(&p),
    });
    let (sid, event) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(route = req.path(), error = %e, "bad voice request refused");
            // Still a valid document: whoever reads it hears an apology, not dead air.
            return xml(StatusCode::BAD_REQUEST, cx.renderer.fallback().to_vec());
        }
    };
    crate::telemetry::record_call(sid.as_str());
    let answered = AssertUnwindSafe(async {
        let reply = cx.service.apply(&sid, &event).await?;
        Ok::<_, StoreError>(cx.renderer.render(&reply))
    })
    .catch_unwind()
    .await;
    match answered {
        Ok(Ok(body)) => xml(StatusCode::OK, body),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "call state unavailable; answered with the apology document");
            xml(StatusCode::OK, cx.renderer.fallback().to_vec())
        }
        Err(_) => {
            tracing::error!("internal error on the call path; answered with the apology document");
            xml(StatusCode::OK, cx.renderer.fallback().to_vec())
        }
    }
}
