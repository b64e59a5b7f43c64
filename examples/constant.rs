//! The baseline for `tests/load.sh`: a minimal actix-web server answering every route Switchboard
//! answers with a constant document (no state, no logic), so the load script can measure what
//! Switchboard's own work costs on top of HTTP and XML. `POST /slow` answers after 2 s: a slow
//! Slack for the "Slack does not slow calls" measurement; `POST /fast` answers `ok` at once: a
//! Slack that keeps up, so the cost of posting every message is measured too.
//!   cargo run --release --example constant -- 8090

use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};

fn doc(base: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>\n{}</Response>\n",
        body.replace("{base}", base)
    )
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8090);
    let base = format!("http://127.0.0.1:{port}");
    let sip = |u: &str| {
        format!("    <Sip statusCallback=\"{{base}}/texml/status\" statusCallbackEvent=\"initiated ringing answered completed\" statusCallbackMethod=\"POST\">sip:{u}@switchboard-demo.sip.example.com</Sip>\n")
    };
    let ring = doc(
        &base,
        &format!(
            "  <Play>{{base}}/audio/greeting.wav</Play>\n  <Dial action=\"{{base}}/texml/dial?round=1\" method=\"POST\" timeout=\"20\">\n{}{}{}  </Dial>\n",
            sip("ada"), sip("grace"), sip("alan")
        ),
    );
    let voicemail = doc(
        &base,
        "  <Play>{base}/audio/voicemail.wav</Play>\n  <Record action=\"{base}/texml/voicemail\" method=\"POST\" maxLength=\"120\" recordingStatusCallback=\"{base}/texml/recording?kind=voicemail\"/>\n  <Hangup/>\n",
    );
    let goodbye = doc(
        &base,
        "  <Play>{base}/audio/goodbye.wav</Play>\n  <Hangup/>\n",
    );
    HttpServer::new(move || {
        let (ring, voicemail, goodbye) = (ring.clone(), voicemail.clone(), goodbye.clone());
        // Every handler reads the request body, as real handlers do: with the body left unread
        // actix answers `connection: close`, and the baseline would measure TCP handshakes.
        let xml = |d: String| {
            move |_body: web::Bytes| {
                let d = d.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/xml; charset=utf-8")
                        .body(d)
                }
            }
        };
        App::new()
            .route("/texml/inbound", web::route().to(xml(ring)))
            .route("/texml/dial", web::route().to(xml(voicemail)))
            .route("/texml/voicemail", web::route().to(xml(goodbye)))
            .route(
                "/texml/status",
                web::post().to(|_body: web::Bytes| async { HttpResponse::NoContent().finish() }),
            )
            .route(
                "/texml/recording",
                web::post().to(|_body: web::Bytes| async { HttpResponse::NoContent().finish() }),
            )
            .route(
                "/fast",
                web::post().to(|_body: web::Bytes| async { HttpResponse::Ok().body("ok") }),
            )
            .route(
                "/slow",
                web::post().to(|_body: web::Bytes| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    HttpResponse::Ok().body("ok")
                }),
            )
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
