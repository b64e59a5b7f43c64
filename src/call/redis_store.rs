//! Call state in Redis, so several replicas serve the same calls.
//!
//! Each call is one key holding its JSON, expiring by itself (`PX`: the grace period once ended,
//! the TTL while live). A transition is an optimistic compare-and-set: read the call, run the
//! pure [`transition`], then a Lua script writes the new state only if the key still holds exactly
//! what was read. When two replicas race on one call, one write wins and the other re-reads and
//! re-decides from the winner's state, so no update is lost, and since only the winning
//! transition's effects run, no notice is sent twice. Live calls are also kept in a sorted set
//! scored by their expiry, which the same script maintains, so counting them is one `ZCOUNT`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::domain::CallSid;

use super::state::Call;
use super::store::{ended, orphan_reply, Applied, CallStore, StoreError, Swept};
use super::transition::{transition, Context};
use super::{Event, Millis};

/// Writes `ARGV[2]` to `KEYS[1]` (with `PX ARGV[3]`) only if `KEYS[1]` still holds `ARGV[1]`
/// (`''`: does not exist), and keeps the live set `KEYS[2]` in step. Returns 1 when written.
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
        .unwrap_or_else(|_| {
            Err(StoreError(format!(
                "Redis did not answer within {DEADLINE:?}"
            )))
        })
}

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    grace_ms: u64,
    ttl_ms: u64,
    cas: Script,
    stale_total: AtomicU64,
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Connects to Redis with bounded timeouts, so an unreachable Redis fails a request quickly
/// instead of holding a caller.
pub async fn connect(url: &str) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(url).map_err(store_error)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(1))
        .set_number_of_retries(2);
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(store_error)
}

impl RedisStore {
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        grace_secs: u64,
        ttl_secs: u64,
    ) -> RedisStore {
        RedisStore {
            conn,
            prefix: prefix.to_owned(),
            grace_ms: grace_secs.saturating_mul(1000),
            ttl_ms: ttl_secs.saturating_mul(1000),
            cas: Script::new(CAS),
            stale_total: AtomicU64::new(0),
        }
    }

    fn call_key(&self, sid: &CallSid) -> String {
        format!("{}call:{}", self.prefix, sid)
    }

    fn live_key(&self) -> String {
        format!("{}live", self.prefix)
    }
}

#[async_trait]
impl CallStore for RedisStore {
    async fn apply(
        &self,
        sid: &CallSid,
        event: &Event,
        now: Millis,
        ctx: &Context<'_>,
    ) -> Result<Applied, StoreError> {
        bounded(self.apply_unbounded(sid, event, now, ctx)).await
    }

    async fn sweep(&self, now: Millis) -> Result<Swept, StoreError> {
        bounded(self.sweep_unbounded(now)).await
    }

    async fn live(&self, now: Millis) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        bounded(async {
            conn.zcount(self.live_key(), format!("({now}"), "+inf")
                .await
                .map_err(store_error)
        })
        .await
    }

    fn stale_total(&self) -> u64 {
        self.stale_total.load(Ordering::Relaxed)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        bounded(async {
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }
}

impl RedisStore {
    async fn apply_unbounded(
        &self,
        sid: &CallSid,
        event: &Event,
        now: Millis,
        ctx: &Context<'_>,
    ) -> Result<Applied, StoreError> {
        let key = self.call_key(sid);
        let mut conn = self.conn.clone();
        for _ in 0..MAX_ATTEMPTS {
            let raw: Option<String> = conn.get(&key).await.map_err(store_error)?;
            let call: Option<Call> = match &raw {
                Some(json) => Some(
                    serde_json::from_str(json)
                        .map_err(|e| StoreError(format!("call {sid} is unreadable: {e}")))?,
                ),
                None => None,
            };
            let step = transition(sid, call.as_ref(), event, now, ctx);
            let Some(next) = step.next else {
                let reply = match &call {
                    Some(call) => call.reply(),
                    None => orphan_reply(event),
                };
                return Ok(Applied {
                    reply,
                    effects: step.effects,
                    ended: None,
                });
            };
            let value = serde_json::to_string(&next).map_err(store_error)?;
            let px = match next.outcome() {
                Some(_) => self.grace_ms,
                None => self.ttl_ms,
            }
            .max(1);
            let written: i64 = self
                .cas
                .key(&key)
                .key(self.live_key())
                .arg(raw.as_deref().unwrap_or(""))
                .arg(&value)
                .arg(px)
                .arg(if next.is_ended() { "0" } else { "1" })
                .arg(now.saturating_add(self.ttl_ms))
                .arg(sid.as_str())
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            if written == 1 {
                return Ok(Applied {
                    reply: next.reply(),
                    effects: step.effects,
                    ended: ended(call.as_ref(), &next),
                });
            }
            // Another replica changed the call meanwhile: decide again from its state.
            tokio::task::yield_now().await;
        }
        Err(StoreError(format!(
            "call {sid}: too much contention ({MAX_ATTEMPTS} attempts)"
        )))
    }

    async fn sweep_unbounded(&self, now: Millis) -> Result<Swept, StoreError> {
        // Call keys expire by themselves; what is left to forget is the live-set entry of a call
        // whose key expired without its final callback.
        let mut conn = self.conn.clone();
        let stale: usize = conn
            .zrembyscore(self.live_key(), "-inf", now)
            .await
            .map_err(store_error)?;
        self.stale_total.fetch_add(stale as u64, Ordering::Relaxed);
        Ok(Swept { ended: 0, stale })
    }
}
