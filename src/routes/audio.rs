//! `GET /audio/{file}`: the prompts, only files indexed from the audio folder at start, with
//! type, length, ranges, ETag and a day of caching (actix-files).

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};

use super::{not_found, Context};

pub(super) async fn audio(
    req: HttpRequest,
    file: web::Path<String>,
    cx: Data<Context>,
) -> HttpResponse {
    let Some(path) = cx.audio.path(&file) else {
        tracing::debug!(file = %file.as_str(), "audio file refused: not in the audio folder");
        return not_found().await;
    };
    match NamedFile::open_async(path).await {
        Ok(named) => {
            let mut res = named
                .use_etag(true)
                .use_last_modified(true)
                .into_response(&req);
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            res
        }
        Err(e) => {
            tracing::warn!(file = %file.as_str(), error = %e, "audio file vanished since start");
            not_found().await
        }
    }
}
