//! Webhook authenticity. Anyone who learns the webhook URLs could otherwise forge calls and spam
//! the Slack channel.
//!
//! - Telnyx: Ed25519 over `"{telnyx-timestamp}|{raw body}"` with the account's public key
//!   (headers `telnyx-signature-ed25519`, `telnyx-timestamp`); timestamps further than
//!   `security.max_clock_skew_secs` from now are refused. The raw bytes are verified as received,
//!   never re-serialized.
//!   The signature covers the body only: a request whose fields ride in the query string (a GET,
//!   or a POST with an empty body) is not covered, and is refused as such ([`Refusal::Unsigned`]).
//! - Twilio: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + sorted form fields)). The URL
//!   is the one the provider signed: the public one, rebuilt from `server.public_url` (or, when
//!   trusted, from `X-Forwarded-*`), plus the path and query as received. A JSON body is bound by
//!   the `bodySHA256` query parameter (its SHA-256, in hex), as Twilio's own validator checks.
//!
//! Which requests must be signed is per route ([`Route`]): Telnyx documents signature headers on
//! its callbacks but not on the requests that fetch a document, so those follow
//! `security.voice_mode` (by default: checked and logged, not refused, under Telnyx).
//!
//! The cryptography is ed25519-dalek, hmac and sha1; nothing here is hand-rolled but the framing.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use url::Url;

use crate::time::Millis;

pub const TELNYX_SIGNATURE: &str = "telnyx-signature-ed25519";
pub const TELNYX_TIMESTAMP: &str = "telnyx-timestamp";
pub const TWILIO_SIGNATURE: &str = "x-twilio-signature";

/// What the checks do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `enforce` when a key or token is configured, else `off`.
    Auto,
    /// No checks.
    Off,
    /// Check and log failures, but let every request through (for a first deployment).
    Log,
    /// Refuse a request without a valid signature: 403, no state change, nothing sent.
    Enforce,
}

/// Why a signature was refused. Logged; the body never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no signature")]
    Missing,
    #[error("signature or timestamp not readable")]
    Malformed,
    #[error("timestamp too far from now")]
    Stale,
    #[error("signature does not match")]
    Forged,
    #[error("the fields are in the query string, which the signature does not cover (use the POST method)")]
    Unsigned,
    #[error("the JSON body does not match the bodySHA256 the signature covers")]
    BodyHash,
}

/// Which kind of route a request came to: they are checked by different modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The provider fetches a document (voice URL, Dial action, Record action).
    Voice,
    /// A callback or event the provider does not wait on for a document.
    Callback,
}

/// Decodes and checks a Telnyx public key (base64 of 32 bytes).
pub fn telnyx_key(base64_key: &str) -> Result<VerifyingKey, String> {
    let bytes = BASE64
        .decode(base64_key.trim())
        .map_err(|e| format!("is not base64 ({e})"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "must decode to 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "is not an Ed25519 public key".to_string())
}

/// Verifies a Telnyx signature over `"{timestamp}|{body}"`.
pub fn verify_telnyx(
    key: &VerifyingKey,
    timestamp: &str,
    signature_b64: &str,
    body: &[u8],
    now: Millis,
    max_skew_secs: u64,
) -> Result<(), Refusal> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| Refusal::Malformed)?;
    let now_secs = (now / 1000) as i64;
    if now_secs.abs_diff(ts) > max_skew_secs {
        return Err(Refusal::Stale);
    }
    let raw = BASE64
        .decode(signature_b64.trim())
        .map_err(|_| Refusal::Malformed)?;
    let signature = Signature::from_slice(&raw).map_err(|_| Refusal::Malformed)?;
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.trim().as_bytes());
    signed.push(b'|');
    signed.extend_from_slice(body);
    key.verify_strict(&signed, &signature)
        .map_err(|_| Refusal::Forged)
}

/// The string Twilio signs: the URL, then each form field's name and value, sorted by name (then
/// value).
fn twilio_payload(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut s = url.to_owned();
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

fn twilio_mac(token: &str) -> Hmac<Sha1> {
    // HMAC takes a key of any length.
    <Hmac<Sha1> as Mac>::new_from_slice(token.as_bytes()).expect("HMAC accepts any key length")
}

/// Twilio's signature of a request (base64).
pub fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut mac = twilio_mac(token);
    mac.update(twilio_payload(url, params).as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Verifies `X-Twilio-Signature` in constant time. Like Twilio's own validator, the URL is tried
/// as given and with its default port added or removed.
pub fn verify_twilio(
    token: &str,
    url: &str,
    params: &[(String, String)],
    signature_b64: &str,
) -> Result<(), Refusal> {
    let expected = BASE64
        .decode(signature_b64.trim())
        .map_err(|_| Refusal::Malformed)?;
    let matches = |candidate: &str| {
        let mut mac = twilio_mac(token);
        mac.update(twilio_payload(candidate, params).as_bytes());
        mac.verify_slice(&expected).is_ok()
    };
    if matches(url) {
        return Ok(());
    }
    let Ok(parsed) = Url::parse(url) else {
        return Err(Refusal::Forged);
    };
    // Without the port (`Url` also drops a default one), and with the default port spelled out.
    let mut without = parsed.clone();
    let _ = without.set_port(None);
    let with_default = parsed.port_or_known_default().and_then(|port| {
        let (scheme, rest) = url.split_once("://")?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let host = parsed.host_str()?;
        Some(format!(
            "{scheme}://{host}:{port}{}",
            &rest[authority_end..]
        ))
    });
    if matches(without.as_str()) || with_default.is_some_and(|u| matches(&u)) {
        Ok(())
    } else {
        Err(Refusal::Forged)
    }
}

/// A JSON body must be the one whose SHA-256 (hex) the signed URL carries as `bodySHA256`.
fn body_hash_matches(query: &str, body: &[u8]) -> Result<(), Refusal> {
    use sha2::{Digest, Sha256};
    let claimed = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.to_ascii_lowercase())
        .ok_or(Refusal::BodyHash)?;
    let actual: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Both are public (the URL and the body): a plain comparison leaks nothing secret.
    if claimed == actual {
        Ok(())
    } else {
        Err(Refusal::BodyHash)
    }
}

/// The keys and policy, built once at start.
pub struct Verifier {
    /// For callbacks.
    pub mode: Mode,
    /// For the requests that fetch a document.
    pub voice_mode: Mode,
    /// Whether the provider documents signing document fetches (Twilio does, Telnyx does not):
    /// `voice_mode = "auto"` then follows `mode`, else only logs.
    pub voice_signed: bool,
    pub telnyx: Option<VerifyingKey>,
    pub twilio: Option<SecretString>,
    pub max_skew_secs: u64,
    /// `server.public_url` without its trailing slash.
    pub public_base: String,
    pub trust_forwarded: bool,
    /// Webhooks refused (or, in `log` mode, let through) for a missing or bad signature.
    pub rejected: prometheus_client::metrics::counter::Counter,
}

/// The parts of a request the checks read.
pub struct Signed<'a> {
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    /// A POST with a form body (Twilio signs its fields).
    pub form: bool,
    /// A JSON body (Twilio binds it with `bodySHA256`).
    pub json: bool,
}

impl Verifier {
    /// Registers `signature_rejections`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "signature_rejections",
            "Webhooks without a valid signature",
            self.rejected.clone(),
        );
    }

    /// The mode in force on `route`: `auto` resolved.
    pub fn effective_mode(&self, route: Route) -> Mode {
        let keys = self.telnyx.is_some() || self.twilio.is_some();
        let callbacks = match self.mode {
            Mode::Auto if keys => Mode::Enforce,
            Mode::Auto => Mode::Off,
            other => other,
        };
        match (route, self.voice_mode) {
            (Route::Callback, _) => callbacks,
            (Route::Voice, Mode::Auto) if self.voice_signed => callbacks,
            (Route::Voice, Mode::Auto) if callbacks == Mode::Off => Mode::Off,
            (Route::Voice, Mode::Auto) => Mode::Log,
            (Route::Voice, mode) => mode,
        }
    }

    /// The URL the provider signed.
    pub fn signed_url(&self, req: &Signed<'_>) -> String {
        let forwarded = self.trust_forwarded.then(|| {
            let proto = (req.header)("x-forwarded-proto")?.split(',').next()?.trim();
            let host = (req.header)("x-forwarded-host")?.split(',').next()?.trim();
            let prefix = (req.header)("x-forwarded-prefix")
                .unwrap_or("")
                .trim_end_matches('/');
            Some(format!("{proto}://{host}{prefix}"))
        });
        let base = forwarded
            .flatten()
            .unwrap_or_else(|| self.public_base.clone());
        if req.query.is_empty() {
            format!("{base}{}", req.path)
        } else {
            format!("{base}{}?{}", req.path, req.query)
        }
    }

    /// Checks one request's signature. `Ok` when valid or when checks are off on `route`.
    pub fn check(&self, req: &Signed<'_>, route: Route, now: Millis) -> Result<(), Refusal> {
        if self.effective_mode(route) == Mode::Off {
            return Ok(());
        }
        if let (Some(key), Some(sig)) = (&self.telnyx, (req.header)(TELNYX_SIGNATURE)) {
            let ts = (req.header)(TELNYX_TIMESTAMP).ok_or(Refusal::Malformed)?;
            verify_telnyx(key, ts, sig, req.body, now, self.max_skew_secs)?;
            // Valid, but over an empty body: whatever the query says is not what was signed.
            return match req.body.is_empty() && !req.query.is_empty() {
                true => Err(Refusal::Unsigned),
                false => Ok(()),
            };
        }
        if let (Some(token), Some(sig)) = (&self.twilio, (req.header)(TWILIO_SIGNATURE)) {
            if req.json {
                body_hash_matches(req.query, req.body)?;
            }
            let params: Vec<(String, String)> = if req.form {
                form_urlencoded::parse(req.body).into_owned().collect()
            } else {
                Vec::new()
            };
            return verify_twilio(token.expose_secret(), &self.signed_url(req), &params, sig);
        }
        Err(Refusal::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Twilio's published test vectors (twilio-python's request validator tests).
    #[test]
    fn twilio_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            twilio_signature("12345", url, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            verify_twilio("12345", url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            Ok(())
        );
        // The same request as received on an explicit default port.
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            verify_twilio("12345", with_port, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            Ok(())
        );
        // JSON bodies are signed over the URL alone (which carries bodySHA256).
        let json_url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(
            twilio_signature("12345", json_url, &[]),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
        // Tampering with anything fails.
        let mut forged = params.clone();
        forged[2].1 = "9999".into();
        assert_eq!(
            verify_twilio("12345", url, &forged, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            Err(Refusal::Forged)
        );
        assert_eq!(
            verify_twilio("54321", url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            Err(Refusal::Forged)
        );
        assert_eq!(
            verify_twilio("12345", url, &params, "not base64!"),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn telnyx_signatures_cover_timestamp_and_raw_body() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let key = telnyx_key(&BASE64.encode(signing.verifying_key().to_bytes())).expect("key");
        let body = b"CallSid=CA1&CallStatus=completed";
        let now = 1_795_262_400_000;
        let ts = "1795262400";
        let sig = BASE64.encode(
            signing
                .sign(b"1795262400|CallSid=CA1&CallStatus=completed")
                .to_bytes(),
        );
        assert_eq!(verify_telnyx(&key, ts, &sig, body, now, 300), Ok(()));
        assert_eq!(
            verify_telnyx(&key, ts, &sig, body, now + 300_000, 300),
            Ok(())
        );
        assert_eq!(
            verify_telnyx(&key, ts, &sig, body, now + 301_000, 300),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify_telnyx(
                &key,
                ts,
                &sig,
                b"CallSid=CA2&CallStatus=completed",
                now,
                300
            ),
            Err(Refusal::Forged)
        );
        assert_eq!(
            verify_telnyx(&key, "1795262401", &sig, body, now, 300),
            Err(Refusal::Forged)
        );
        assert_eq!(
            verify_telnyx(&key, "soon", &sig, body, now, 300),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            verify_telnyx(&key, ts, "AAAA", body, now, 300),
            Err(Refusal::Malformed)
        );
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let wrong = telnyx_key(&BASE64.encode(other.verifying_key().to_bytes())).expect("key");
        assert_eq!(
            verify_telnyx(&wrong, ts, &sig, body, now, 300),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn bad_public_keys_are_refused_with_a_reason() {
        assert!(telnyx_key("not base64!").unwrap_err().contains("base64"));
        assert!(telnyx_key(&BASE64.encode([1u8; 31]))
            .unwrap_err()
            .contains("32 bytes"));
    }
}
