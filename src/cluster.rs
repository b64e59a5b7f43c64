//! What replicas share besides call state: a lease that lets one replica at a time run the
//! scheduled jobs, and the agent list that replica reads from the provider. With the memory
//! backend there is one replica: it always holds the lease and shares nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::call::redis_store::bounded;
use crate::call::StoreError;
use crate::domain::Agent;

/// Holds the lease if free or already ours (renewing it), else returns 0.
const TAKE_OR_RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Deletes the lease only if it is ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The right to run the scheduled jobs: a Redis key with an expiry, renewed by its holder every
/// third of its TTL. When the holder dies, the key expires and another replica takes it.
pub struct Lease {
    redis: Option<(ConnectionManager, String)>,
    /// Who we are: pod name (HOSTNAME), process id and start time.
    me: String,
    ttl: Duration,
    holding: AtomicBool,
}

impl Lease {
    /// The single-replica lease: always held.
    pub fn solo() -> Lease {
        Lease {
            redis: None,
            me: String::new(),
            ttl: Duration::from_secs(30),
            holding: AtomicBool::new(true),
        }
    }

    pub fn redis(conn: ConnectionManager, key: String, ttl: Duration) -> Lease {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "switchboard".into());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Lease {
            redis: Some((conn, key)),
            me: format!("{host}-{}-{started}", std::process::id()),
            ttl,
            holding: AtomicBool::new(false),
        }
    }

    /// Whether this replica runs the jobs now.
    pub fn holding(&self) -> bool {
        self.holding.load(Ordering::Relaxed)
    }

    /// How often [`Lease::renew`] should run.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes the lease if it is free, renews it if it is ours. Returns whether we hold it; a
    /// Redis error counts as not holding it (better no job run than two).
    pub async fn renew(&self) -> bool {
        let Some((conn, key)) = &self.redis else {
            return true;
        };
        let mut conn = conn.clone();
        let held = bounded(async {
            Script::new(TAKE_OR_RENEW)
                .key(key)
                .arg(&self.me)
                .arg(self.ttl.as_millis() as u64)
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(|e| StoreError(e.to_string()))
        })
        .await;
        let now = held.as_ref().is_ok_and(|h| *h == 1);
        let before = self.holding.swap(now, Ordering::Relaxed);
        match (before, now, &held) {
            (false, true, _) => {
                tracing::info!(holder = %self.me, "took the job lease: this replica runs the scheduled jobs")
            }
            (true, false, Ok(_)) => tracing::warn!("lost the job lease to another replica"),
            (_, false, Err(e)) => {
                tracing::warn!(error = %e, "job lease not renewed: Redis unreachable")
            }
            _ => {}
        }
        now
    }

    /// Gives the lease up (at shutdown), so another replica takes over at once.
    pub async fn release(&self) {
        if let Some((conn, key)) = &self.redis {
            let mut conn = conn.clone();
            let _ = bounded(async {
                Script::new(RELEASE)
                    .key(key)
                    .arg(&self.me)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|e| StoreError(e.to_string()))
            })
            .await;
            self.holding.store(false, Ordering::Relaxed);
        }
    }
}

/// The agent list, as the lease holder last read it from the provider.
pub struct SharedAgents {
    conn: ConnectionManager,
    key: String,
}

impl SharedAgents {
    pub fn new(conn: ConnectionManager, key: String) -> SharedAgents {
        SharedAgents { conn, key }
    }

    pub async fn publish(&self, agents: &[Agent]) -> Result<(), String> {
        let json = serde_json::to_string(agents).map_err(|e| e.to_string())?;
        let mut conn = self.conn.clone();
        bounded(async {
            conn.set::<_, _, ()>(&self.key, json)
                .await
                .map_err(|e| StoreError(e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// The published list, if any.
    pub async fn fetch(&self) -> Result<Option<Vec<Agent>>, String> {
        let mut conn = self.conn.clone();
        let json: Option<String> = bounded(async {
            conn.get(&self.key)
                .await
                .map_err(|e| StoreError(e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| e.to_string()))
            .transpose()
    }
}
