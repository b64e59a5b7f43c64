//! `GET /recordings/{id}`: an archived recording, to the admin token or to a signed link that has
//! not expired (`?expires=…&sig=…`, as Slack shows them). Ranges, type and length by actix-files;
//! never cached by shared caches. Deleted by retention: 410.

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use super::admin::{authorized, error};
use super::Context;

#[derive(Debug, Deserialize)]
pub(super) struct Signed {
    expires: Option<u64>,
    sig: Option<String>,
}

pub(super) async fn recording(
    req: HttpRequest,
    id: Path<String>,
    cx: Data<Context>,
) -> HttpResponse {
    let Some(archive) = &cx.recordings else {
        return error(StatusCode::NOT_FOUND, "the recordings archive is off");
    };
    let signed = Query::<Signed>::from_query(req.query_string()).ok();
    let by_link = match signed.as_deref() {
        Some(Signed {
            expires: Some(expires),
            sig: Some(sig),
        }) => archive
            .links()
            .is_some_and(|l| l.verify(&id, *expires, sig, cx.clock.now_ms())),
        _ => false,
    };
    if !by_link {
        if let Err(refused) = authorized(&req, &cx) {
            // Off (no admin token) or refused: either way, a link that did not verify.
            tracing::warn!(
                path = req.path(),
                "recording refused: no valid link or token"
            );
            let answer = refused.respond();
            return match answer.status() {
                StatusCode::NOT_FOUND => HttpResponse::Unauthorized()
                    .json(serde_json::json!({"error": "this link is not valid (or expired)"})),
                _ => answer,
            };
        }
    }
    let row = match archive.ledger().recording(&id).await {
        Ok(Some(row)) => row,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such recording"),
        Err(e) => {
            tracing::error!(error = %e, "recordings unreadable");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the archive is unavailable",
            );
        }
    };
    match row.state.as_str() {
        "archived" => {}
        "deleted" => return error(StatusCode::GONE, "deleted by the retention policy"),
        _ => return error(StatusCode::NOT_FOUND, "not archived (yet)"),
    }
    let Some(file) = archive.file_of(&row) else {
        return error(StatusCode::NOT_FOUND, "no such recording");
    };
    let mime = row
        .content_type
        .as_deref()
        .and_then(|t| t.parse::<actix_web::mime::Mime>().ok())
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM);
    match NamedFile::open_async(&file).await {
        Ok(named) => {
            let mut res = named
                .set_content_type(mime)
                .use_etag(true)
                .use_last_modified(false)
                .into_response(&req);
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            res
        }
        Err(e) => {
            tracing::error!(id = row.id, error = %e, "archived recording missing from the archive directory");
            error(StatusCode::NOT_FOUND, "the file is missing")
        }
    }
}
