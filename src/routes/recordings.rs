//! `GET /recordings/{id}`: an archived recording, to the admin token or to a signed link that has
//! not expired (`?expires=…&sig=…`, as Slack shows them), from whichever store keeps it (a
//! directory or a bucket): one byte range for players that seek, its SHA-256 as the entity tag;
//! never cached by shared caches. Deleted by retention: 410.

use actix_files::HttpRange;
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use futures_util::TryStreamExt;

use super::admin::{authorized, error};
use super::Context;
use crate::ledger::archive::kept_in;
use crate::ledger::store::Store;
use crate::ledger::RecordingRow;

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
    archived(&req, archive, &id).await
}

/// Archived recording `id` from the archive's store (the caller has checked who is asking).
pub(super) async fn archived(
    req: &HttpRequest,
    archive: &crate::ledger::archive::Archive,
    id: &str,
) -> HttpResponse {
    let row = match archive.ledger().recording(id).await {
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
    let store = archive.store();
    let (Some(path), true) = (row.path.as_deref(), kept_in(store, &row)) else {
        tracing::error!(id = row.id, kept = ?row.store, store = store.name(), "archived recording is not in the configured store");
        return error(StatusCode::NOT_FOUND, "not in the configured store");
    };
    serve(req, store, &row, path).await
}

/// Recording `row` from `store`: whole, or the one range asked for (several ranges get it whole,
/// as HTTP allows); its SHA-256 is the entity tag.
async fn serve(req: &HttpRequest, store: &Store, row: &RecordingRow, path: &str) -> HttpResponse {
    let etag = row.sha256.as_ref().map(|h| format!("\"{h}\""));
    let matches = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .zip(etag.as_deref())
            .is_some_and(|(given, ours)| given.split(',').any(|t| t.trim() == ours))
    };
    if matches(header::IF_NONE_MATCH) {
        return HttpResponse::NotModified().finish();
    }
    let size = row.bytes.unwrap_or(0);
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| size > 0);
    // If-Range with another tag: the whole file.
    let current = req.headers().get(header::IF_RANGE).is_none() || matches(header::IF_RANGE);
    let range = match asked.filter(|_| current).map(|h| HttpRange::parse(h, size)) {
        None => None,
        Some(Ok(ranges)) if ranges.len() == 1 => Some(ranges[0]),
        Some(Ok(_)) => None,
        Some(Err(_)) => {
            return HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish()
        }
    };
    let got = match store
        .read(path, range.map(|r| r.start..r.start + r.length))
        .await
    {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            tracing::error!(
                id = row.id,
                store = store.name(),
                "archived recording missing from the store"
            );
            return error(StatusCode::NOT_FOUND, "the file is missing");
        }
        Err(e) => {
            tracing::error!(id = row.id, store = store.name(), error = %e, "archived recording unreadable");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the archive is unavailable",
            );
        }
    };
    let span = got.range.clone();
    let mut res = match range {
        Some(_) => {
            let mut res = HttpResponse::PartialContent();
            res.insert_header((
                header::CONTENT_RANGE,
                format!(
                    "bytes {}-{}/{}",
                    span.start,
                    span.end.saturating_sub(1),
                    got.meta.size
                ),
            ));
            res
        }
        None => HttpResponse::Ok(),
    };
    let mime = row
        .content_type
        .as_deref()
        .and_then(|t| t.parse::<actix_web::mime::Mime>().ok())
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM);
    res.content_type(mime)
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        ));
    if let Some(tag) = &etag {
        res.insert_header((header::ETAG, tag.as_str()));
    }
    let id = row.id.clone();
    let body = got.into_stream().map_err(move |e| {
        tracing::error!(id, error = %e, "archived recording unreadable midway");
        actix_web::error::ErrorServiceUnavailable("the archive is unavailable")
    });
    res.body(SizedStream::new(span.end - span.start, body))
}
