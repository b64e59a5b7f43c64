//! Call state in Redis, so several replicas serve the same calls.
//!
//! Each call is one key holding its JSON, expiring by itself (`PX`, from [`Expiry`]). A
//! transition is an optimistic compare-and-set: read the call, let the caller decide (the pure
//! transition), then a Lua script writes the new state only if the key still holds exactly what
//! was read. When two replicas race on one call, one write wins and the other re-reads and
//! re-decides from the winner's state, so no update is lost, and since only the winning
//! transition's facts are returned, no fact is told twice. Two sorted sets are kept by the same
//! script: live calls scored by their expiry (counting them is one `ZCOUNT`), and calls that
//! ended unsettled scored by when they are due to settle, and conference-mode calls scored by
//! their room's timer ([`CallStore::due`]).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::domain::CallSid;
use crate::time::Millis;

use super::state::Call;
use super::store::{register_stale, Applied, CallStore, Decide, Expiry, StoreError, Swept};

/// Writes `ARGV[2]` to `KEYS[1]` (with `PX ARGV[3]`) only if `KEYS[1]` still holds `ARGV[1]`
/// (`''`: does not exist), and keeps the live set `KEYS[2]` and the unsettled set `KEYS[3]` in
/// step (`ARGV[7]` '1' with score `ARGV[8]`: waiting to settle). Returns 1 when written.
const CAS: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
else
  redis.call('ZREM', KEYS[2], ARGV[6])
end
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[6])
else
  redis.call('ZREM', KEYS[3], ARGV[6])
end
return 1
";

/// Attempts before giving up on a call under constant contention (never seen in practice:
/// callbacks for one call arrive a few at a time).
const MAX_ATTEMPTS: u32 = 64;

/// The longest any store operation may take. While Redis is unreachable the connection manager
/// keeps reconnecting and a command would wait for it; a caller must not.
pub const DEADLINE: Duration = Duration::from_millis(1500);

/// Runs `op` within [`DEADLINE`].
pub async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(DEADLINE, op)
        .await
        .unwrap_or(Err(StoreError::Timeout(DEADLINE)))
}

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    expiry: Expiry,
    cas: Script,
    /// Live-set entries whose call expired without its final callback (this replica's sweeps).
    stale: Counter,
}

/// Connects to Redis with bounded timeouts, so an unreachable Redis fails a request quickly
/// instead of holding a caller.
pub async fn connect(url: &str) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(url)?;
    // The reconnection backoff is set explicitly: redis-rs hands `factor` to its backoff library
    // as a multiplier of a 1 s first delay, so its default (100) waits 100 s before the second
    // attempt, and a replica whose Redis restarted stayed unready for minutes (found by a test).
    // Here: attempts 1 s apart at most, so a restarted Redis is back within about a second.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(Duration::from_secs(1))
        .set_factor(1)
        .set_max_delay(1000)
        .set_number_of_retries(2);
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(StoreError::from)
}

impl RedisStore {
    pub fn new(conn: ConnectionManager, prefix: &str, expiry: Expiry) -> RedisStore {
        RedisStore {
            conn,
            prefix: prefix.to_owned(),
            expiry,
            cas: Script::new(CAS),
            stale: Counter::default(),
        }
    }

    fn call_key(&self, sid: &CallSid) -> String {
        format!("{}call:{}", self.prefix, sid)
    }

    fn live_key(&self) -> String {
        format!("{}live", self.prefix)
    }

    fn unsettled_key(&self) -> String {
        format!("{}unsettled", self.prefix)
    }
}

#[async_trait]
impl CallStore for RedisStore {
    async fn apply(
        &self,
        sid: &CallSid,
        now: Millis,
        decide: &Decide<'_>,
    ) -> Result<Applied, StoreError> {
        bounded(self.apply_unbounded(sid, now, decide)).await
    }

    async fn due(&self, now: Millis) -> Result<Vec<CallSid>, StoreError> {
        let mut conn = self.conn.clone();
        bounded(async {
            // An entry still there a whole TTL after it was due belongs to a call whose key has
            // expired: nothing can settle it any more.
            let gone = now.saturating_sub(self.expiry.ttl_ms);
            let _: usize = conn.zrembyscore(self.unsettled_key(), "-inf", gone).await?;
            let sids: Vec<String> = conn
                .zrangebyscore_limit(self.unsettled_key(), "-inf", now, 0, 1000)
                .await?;
            Ok(sids.iter().filter_map(|s| CallSid::parse(s).ok()).collect())
        })
        .await
    }

    async fn sweep(&self, now: Millis) -> Result<Swept, StoreError> {
        bounded(self.sweep_unbounded(now)).await
    }

    async fn live(&self, now: Millis) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        bounded(async {
            Ok(conn
                .zcount(self.live_key(), format!("({now}"), "+inf")
                .await?)
        })
        .await
    }

    async fn calls(&self, now: Millis, limit: usize) -> Result<Vec<Call>, StoreError> {
        let mut conn = self.conn.clone();
        bounded(async {
            let sids: Vec<String> = conn
                .zrangebyscore_limit(self.live_key(), format!("({now}"), "+inf", 0, limit as isize)
                .await?;
            if sids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = sids.iter().map(|s| format!("{}call:{s}", self.prefix)).collect();
            let raw: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            let mut calls = Vec::with_capacity(raw.len());
            for (sid, json) in sids.iter().zip(raw) {
                // Gone since it was listed (ended and expired): not live.
                let Some(json) = json else { continue };
                match serde_json::from_str::<Call>(&json) {
                    Ok(call) if !call.is_ended() => calls.push(call),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(call_sid = %sid, error = %e, "unreadable call left out of the dashboard"),
                }
            }
            Ok(calls)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        bounded(async {
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }

    fn register(&self, registry: &mut Registry) {
        register_stale(registry, &self.stale);
    }
}

impl RedisStore {
    async fn apply_unbounded(
        &self,
        sid: &CallSid,
        now: Millis,
        decide: &Decide<'_>,
    ) -> Result<Applied, StoreError> {
        let key = self.call_key(sid);
        let mut conn = self.conn.clone();
        for _ in 0..MAX_ATTEMPTS {
            let raw: Option<String> = conn.get(&key).await?;
            let call: Option<Call> = match &raw {
                Some(json) => {
                    Some(
                        serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
                            sid: sid.to_string(),
                            source,
                        })?,
                    )
                }
                None => None,
            };
            let mut step = decide(call.as_ref());
            let Some(next) = step.next.take() else {
                return Ok(step.into());
            };
            let value = serde_json::to_string(&next)?;
            let px = self.expiry.until(&next, now).saturating_sub(now).max(1);
            // Due: to settle (an unsettled voicemail), or a conference call's timer.
            let settle_by = next
                .unsettled_since()
                .map(|at| self.expiry.settle_by(at))
                .or_else(|| next.conference_due());
            let written: i64 = self
                .cas
                .key(&key)
                .key(self.live_key())
                .key(self.unsettled_key())
                .arg(raw.as_deref().unwrap_or(""))
                .arg(&value)
                .arg(px)
                .arg(if next.is_ended() { "0" } else { "1" })
                .arg(self.expiry.while_live(now))
                .arg(sid.as_str())
                .arg(if settle_by.is_some() { "1" } else { "0" })
                .arg(settle_by.unwrap_or(0))
                .invoke_async(&mut conn)
                .await?;
            if written == 1 {
                return Ok(step.into());
            }
            // Another replica changed the call meanwhile: decide again from its state.
            tokio::task::yield_now().await;
        }
        Err(StoreError::Contention(sid.to_string()))
    }

    async fn sweep_unbounded(&self, now: Millis) -> Result<Swept, StoreError> {
        // Call keys expire by themselves; what is left to forget is the live-set entry of a call
        // whose key expired without its final callback.
        let mut conn = self.conn.clone();
        let stale: usize = conn.zrembyscore(self.live_key(), "-inf", now).await?;
        self.stale.inc_by(stale as u64);
        Ok(Swept { ended: 0, stale })
    }
}
