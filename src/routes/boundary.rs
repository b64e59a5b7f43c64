//! The HTTP boundary of the webhooks, in one place: the signature check as an extractor
//! ([`Verified`]: a handler that reads a webhook body takes it, so no route can read what the check
//! did not see), and the one error type whose variants are the outcomes ([`WebhookError`]).

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::LocalBoxFuture;

use super::{text, xml, Context};
use crate::call::StoreError;
use crate::signature::{Mode, Refusal, Route, Signed};
use crate::webhook::{BadRequest, Params};

/// What kind of webhook a route is: it decides how each outcome is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The provider waits for a document (voice URL, Dial action, Record action).
    Voice,
    /// The provider waits for a document for an agent's screened leg (its whisper, its key):
    /// whatever goes wrong, that leg is hung up, so it never takes the call unscreened.
    Screen,
    /// A status or recording callback (TeXML).
    Callback,
    /// A Call Control event (JSON) from an agent's connection.
    CallControl,
}

impl Kind {
    /// The routes of `path` (a matched pattern).
    fn of(path: &str) -> Kind {
        match path {
            "/texml/inbound"
            | "/texml/dial"
            | "/texml/menu"
            | "/texml/voicemail"
            | "/texml/conference/left"
            | "/texml/conference/resume"
            | "/texml/conference/hold" => Kind::Voice,
            "/texml/screen"
            | "/texml/screen/answer"
            | "/texml/conference/organizer"
            | "/texml/conference/organizer/answer"
            | "/texml/conference/organizer/left"
            | "/texml/conference/announce" => Kind::Screen,
            "/telnyx/events" => Kind::CallControl,
            _ => Kind::Callback,
        }
    }
}

/// Why a webhook could not be handled as asked. Each variant's doc is what the provider gets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    /// 403 on every route, before anything is read: no valid signature where one is required.
    #[error("forbidden: {0}")]
    Forbidden(Refusal),
    /// A request Switchboard cannot use (a field missing or malformed, JSON where a form
    /// belongs). Voice: 200 and the apology document (Telnyx only plays a 200's document; on an
    /// error it goes to the fallback URL). Callback: 200, logged and counted (a non-200 would only
    /// move it to the failover URL, where it is just as unusable). Call Control: 400 (Telnyx does
    /// not retry a 4xx).
    #[error("bad request: {0}")]
    BadRequest(#[from] BadRequest),
    /// The call store did not answer. Voice: 200 and the apology document. Callback: 200, the
    /// event kept and applied when the store answers again ([`crate::service`]).
    #[error("{0}")]
    StoreUnavailable(#[from] StoreError),
    /// A panic on the call path. Voice: 200 and the apology document. Callback: 500.
    #[error("internal error")]
    Internal,
}

impl WebhookError {
    /// The answer to a webhook of `kind` that ended so; logs it and counts bad requests.
    pub(crate) fn respond(&self, kind: Kind, req: &HttpRequest, cx: &Context) -> HttpResponse {
        let route = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
        match self {
            WebhookError::Forbidden(why) => forbidden(why),
            WebhookError::BadRequest(e) => {
                cx.http.bad_request(&route);
                tracing::warn!(route, error = %e, "bad webhook: counted and acknowledged");
                match kind {
                    Kind::Voice => xml(StatusCode::OK, cx.renderer.fallback().to_vec()),
                    Kind::Screen => hang_up(),
                    Kind::Callback => HttpResponse::Ok().finish(),
                    Kind::CallControl => text(HttpResponse::BadRequest(), format!("{self}\n")),
                }
            }
            WebhookError::StoreUnavailable(e) => {
                tracing::error!(route, error = %e, "call state unavailable");
                match kind {
                    Kind::Voice => xml(StatusCode::OK, cx.renderer.fallback().to_vec()),
                    Kind::Screen => hang_up(),
                    _ => HttpResponse::Ok().finish(),
                }
            }
            WebhookError::Internal => {
                tracing::error!(route, "internal error on the call path");
                match kind {
                    Kind::Voice => xml(StatusCode::OK, cx.renderer.fallback().to_vec()),
                    Kind::Screen => hang_up(),
                    _ => HttpResponse::InternalServerError().finish(),
                }
            }
        }
    }
}

/// What a screened leg gets when its request cannot be handled: hang up that leg.
fn hang_up() -> HttpResponse {
    let document = crate::texml::Response::new(vec![crate::texml::Verb::Hangup])
        .to_xml()
        .unwrap_or_else(|_| b"<Response><Hangup/></Response>".to_vec());
    xml(StatusCode::OK, document)
}

fn forbidden(why: &Refusal) -> HttpResponse {
    text(HttpResponse::Forbidden(), format!("forbidden: {why}\n"))
}

/// The extractor's error: only [`WebhookError::Forbidden`] arises before the handler runs, and
/// it is answered the same on every route.
impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::Forbidden(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            WebhookError::Forbidden(why) => forbidden(why),
            _ => HttpResponse::InternalServerError().finish(),
        }
    }
}

/// A webhook whose signature was checked as its route requires; its body, as received.
pub(crate) struct Verified {
    pub(crate) body: Bytes,
    /// The body is labelled JSON.
    pub(crate) json: bool,
    pub(crate) kind: Kind,
}

impl Verified {
    /// The provider's fields: the form body of a POST, or the query string of a GET (Telnyx's
    /// default voice method) or of an empty POST. A JSON body is never read as form fields.
    pub(crate) fn params(&self, req: &HttpRequest) -> Result<Params, BadRequest> {
        if self.json {
            return Err(BadRequest::NotForm);
        }
        if req.method() == Method::GET || self.body.is_empty() {
            Params::parse(req.query_string().as_bytes())
        } else {
            Params::parse(&self.body)
        }
    }
}

impl FromRequest for Verified {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Verified, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await?;
            let kind = Kind::of(&req.match_pattern().unwrap_or_default());
            let json = is_json(&req);
            let Some(cx) = req.app_data::<Data<Context>>() else {
                return Err(actix_web::error::ErrorInternalServerError("no context"));
            };
            check(&req, &body, json, kind, cx)
                .map_err(|why| actix_web::Error::from(WebhookError::Forbidden(why)))?;
            Ok(Verified { body, json, kind })
        })
    }
}

/// Checks the signature as the route requires; counts and logs every failure (never the body).
fn check(
    req: &HttpRequest,
    body: &[u8],
    json: bool,
    kind: Kind,
    cx: &Context,
) -> Result<(), Refusal> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        header: &header,
        path: req.path(),
        query: req.query_string(),
        body,
        form: req.method() == Method::POST && !json,
        json,
    };
    let route = match kind {
        Kind::Voice | Kind::Screen => Route::Voice,
        _ => Route::Callback,
    };
    let Err(why) = cx.verifier.check(&signed, route, cx.clock.now_ms()) else {
        return Ok(());
    };
    cx.verifier.rejected.inc();
    let total = cx.verifier.rejected.get();
    if cx.verifier.effective_mode(route) == Mode::Log {
        tracing::warn!(route = req.path(), %why, rejected_signatures_total = total, "webhook signature not valid (log mode: let through)");
        return Ok(());
    }
    tracing::warn!(route = req.path(), %why, rejected_signatures_total = total, "webhook refused: signature not valid");
    Err(why)
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}
