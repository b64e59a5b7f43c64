//! Who is asking for the dashboard: HTTP Basic against the configured users (Argon2 PHC hashes),
//! or the user an authenticating proxy names in a header, trusted only from the proxy's
//! addresses. A wrong or missing answer says nothing about what the page holds.
//!
//! Checking an Argon2 hash takes tens of milliseconds of CPU and about 19 MiB: it runs off the
//! async workers, at most two at a time (which also slows down guessing), and a password found
//! right is remembered for the process's life (a keyed digest of name and password, never the
//! password), so a page's event stream, script and actions do not pay for it again. A restart
//! with a new hash forgets it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::HttpRequest;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordVerifier;
use base64::Engine;
use dashmap::DashMap;
use hmac::Mac;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

use super::settings::{DashboardSettings, ProxyAuth, Role};

/// Someone signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub name: String,
    pub role: Role,
}

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No credentials: the browser should ask.
    Missing,
    /// A wrong name or password, or a proxy header from elsewhere.
    Wrong,
    /// Too many passwords being checked already (a flood of guesses): try again shortly.
    Busy,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// How long a sign-in waits for a hash check at most.
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Remembered right answers at most (a new one clears them all: a bound, not a cache policy).
const REMEMBERED: usize = 1024;

pub struct Gate {
    users: HashMap<String, (String, Role)>,
    proxy: Option<ProxyAuth>,
    /// Keyed digests of `name:password` found right, with who they are.
    known: DashMap<[u8; 32], Who>,
    /// The key of those digests, random per process.
    key: [u8; 32],
    /// Hash checks running at once.
    slots: Arc<Semaphore>,
    /// A hash checked for unknown names too, so the time taken does not say who exists.
    decoy: String,
    /// `dashboard_sign_ins_total{result}`: ok, wrong, missing, proxy.
    results: Family<ResultLabels, Counter>,
}

fn random_key() -> [u8; 32] {
    let (a, b) = (
        argon2::password_hash::generate_salt(),
        argon2::password_hash::generate_salt(),
    );
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&a);
    key[16..].copy_from_slice(&b);
    key
}

/// A PHC Argon2id hash of `password` with a random salt (`switchboard hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash` (CPU-heavy: call off the async workers).
fn verify(hash: &str, password: &[u8]) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2::Argon2::default()
                .verify_password(password, &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Gate {
    pub fn new(settings: &DashboardSettings, registry: &mut Registry) -> Gate {
        let results = Family::default();
        registry.register(
            "dashboard_sign_ins",
            "Dashboard requests by sign-in result: ok, proxy, wrong, missing, busy",
            results.clone(),
        );
        let key = random_key();
        Gate {
            users: settings
                .users
                .iter()
                .map(|u| (u.name.clone(), (u.password_hash.clone(), u.role)))
                .collect(),
            proxy: settings.proxy.clone(),
            known: DashMap::new(),
            key,
            slots: Arc::new(Semaphore::new(2)),
            decoy: hash_password(&crate::ledger::archive::hex(&key)).unwrap_or_default(),
            results,
        }
    }

    fn count(&self, result: &'static str) {
        self.results.get_or_create(&ResultLabels { result }).inc();
    }

    /// Who `req` comes from, or why not.
    pub async fn check(&self, req: &HttpRequest) -> Result<Who, Denied> {
        if let Some(who) = self.proxy_user(req) {
            self.count("proxy");
            return Ok(who);
        }
        let Some((name, password)) = basic(req) else {
            self.count("missing");
            return Err(Denied::Missing);
        };
        let digest = self.digest(&name, &password);
        if let Some(who) = self.known.get(&digest) {
            self.count("ok");
            return Ok(who.clone());
        }
        // Waiting for a slot is bounded: a flood of wrong guesses delays new sign-ins by this
        // much at most, and is then told to come back (remembered sign-ins never wait).
        let slot = tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned()).await;
        let Ok(Ok(_slot)) = slot else {
            self.count("busy");
            return Err(Denied::Busy);
        };
        // Another request with the same answer may have been checked meanwhile.
        if let Some(who) = self.known.get(&digest) {
            self.count("ok");
            return Ok(who.clone());
        }
        let user = self.users.get(&name).cloned();
        let hash = user
            .as_ref()
            .map_or_else(|| self.decoy.clone(), |(h, _)| h.clone());
        let right = tokio::task::spawn_blocking(move || verify(&hash, password.as_bytes()))
            .await
            .unwrap_or(false);
        match (right, user) {
            (true, Some((_, role))) => {
                if self.known.len() >= REMEMBERED {
                    self.known.clear();
                }
                let who = Who { name, role };
                self.known.insert(digest, who.clone());
                self.count("ok");
                Ok(who)
            }
            _ => {
                self.count("wrong");
                // Escaped (`?`): a name is whatever the client sent.
                tracing::warn!(
                    user = ?name.chars().take(64).collect::<String>(),
                    peer = ?req.peer_addr(),
                    path = req.path(),
                    "dashboard sign-in refused: unknown user or wrong password"
                );
                Err(Denied::Wrong)
            }
        }
    }

    fn digest(&self, name: &str, password: &str) -> [u8; 32] {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user the proxy names, when the request comes from one of its addresses.
    fn proxy_user(&self, req: &HttpRequest) -> Option<Who> {
        let proxy = self.proxy.as_ref()?;
        let peer: IpAddr = req.peer_addr()?.ip();
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        if !proxy.from.iter().any(|net| net.contains(&peer)) {
            return None;
        }
        let name = req.headers().get(&proxy.header)?.to_str().ok()?.trim();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return None;
        }
        let role = match proxy
            .supervisors
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
        {
            true => Role::Supervisor,
            false => Role::Viewer,
        };
        Some(Who {
            name: name.to_owned(),
            role,
        })
    }
}

/// `Authorization: Basic base64(name:password)`.
fn basic(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify(&hash, b"correct horse"));
        assert!(!verify(&hash, b"correct horse "));
        assert!(!verify("not a hash", b"correct horse"));
    }
}
