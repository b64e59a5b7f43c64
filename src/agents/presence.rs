//! Where agents' presence lives (busy on a call, wrapping up, away; when they last answered and
//! hung up): in memory for one replica, or one Redis hash shared by every replica. What a change
//! means is the core's ([`crate::call::routing::Mark::apply`]); this only reads and writes.
//!
//! In Redis each agent is one field of `<prefix>presence` holding JSON. A change is an optimistic
//! compare-and-set (read the field, apply the mark, write only if the field still holds what was
//! read, else re-read), so two replicas marking the same agent at once lose nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::call::redis_store::bounded;
use crate::call::routing::{Mark, Presence, Presences};
use crate::call::StoreError;

/// Writes `ARGV[3]` to field `ARGV[1]` of `KEYS[1]` only if it still holds `ARGV[2]` (`''`: no
/// such field). Returns 1 when written.
const CAS: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
";

/// Attempts of one change under contention (a handful of events per agent per call in practice).
const MAX_ATTEMPTS: u32 = 16;

pub enum PresenceStore {
    Memory(Mutex<Presences>),
    Redis {
        conn: ConnectionManager,
        key: String,
        cas: Script,
    },
}

impl PresenceStore {
    pub fn memory() -> PresenceStore {
        PresenceStore::Memory(Mutex::new(Arc::default()))
    }

    /// In the Redis hash `key`.
    pub fn redis(conn: ConnectionManager, key: String) -> PresenceStore {
        PresenceStore::Redis {
            conn,
            key,
            cas: Script::new(CAS),
        }
    }

    /// Every agent's presence (agents never marked are absent: free).
    pub async fn all(&self) -> Result<Presences, StoreError> {
        match self {
            PresenceStore::Memory(map) => Ok(map.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            PresenceStore::Redis { conn, key, .. } => {
                let mut conn = conn.clone();
                let raw: HashMap<String, String> =
                    bounded(async { Ok(conn.hgetall(key).await?) }).await?;
                let mut map = HashMap::with_capacity(raw.len());
                for (agent, json) in raw {
                    match serde_json::from_str::<Presence>(&json) {
                        Ok(p) => {
                            map.insert(agent.into_boxed_str(), p);
                        }
                        Err(e) => {
                            tracing::error!(agent, error = %e, "unreadable agent presence ignored")
                        }
                    }
                }
                Ok(Arc::new(map))
            }
        }
    }

    /// Applies `mark` to its agent; returns their presence after it.
    pub async fn mark(&self, mark: &Mark) -> Result<Presence, StoreError> {
        let agent = mark.agent();
        match self {
            PresenceStore::Memory(map) => {
                let mut guard = map.lock().unwrap_or_else(|p| p.into_inner());
                let mut next = HashMap::clone(&guard);
                let now = mark.apply(next.get(agent).cloned().unwrap_or_default());
                next.insert(agent.into(), now.clone());
                *guard = Arc::new(next);
                Ok(now)
            }
            PresenceStore::Redis { conn, key, cas } => {
                let mut conn = conn.clone();
                for _ in 0..MAX_ATTEMPTS {
                    let current: Option<String> =
                        bounded(async { Ok(conn.hget(key, agent).await?) }).await?;
                    let before = current
                        .as_deref()
                        .and_then(|json| serde_json::from_str::<Presence>(json).ok())
                        .unwrap_or_default();
                    let after = mark.apply(before);
                    let json = serde_json::to_string(&after).map_err(StoreError::from)?;
                    let mut invocation = cas.key(key);
                    invocation
                        .arg(agent)
                        .arg(current.as_deref().unwrap_or(""))
                        .arg(&json);
                    let written: i32 =
                        bounded(async { Ok(invocation.invoke_async(&mut conn).await?) }).await?;
                    if written == 1 {
                        return Ok(after);
                    }
                }
                Err(StoreError::Contention(format!("agent {agent}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallSid;

    #[tokio::test]
    async fn marks_are_kept_per_agent() {
        let store = PresenceStore::memory();
        let call = CallSid::parse("CA1").expect("sid");
        store
            .mark(&Mark::Answered {
                agent: "ada".into(),
                call: call.clone(),
                at: 1_000,
                until: 100_000,
            })
            .await
            .expect("marked");
        let all = store.all().await.expect("read");
        assert!(!all["ada"].free(50_000));
        let after = store
            .mark(&Mark::Ended {
                agent: "ada".into(),
                call,
                at: 10_000,
                wrap_up_secs: 5,
            })
            .await
            .expect("marked");
        assert!(after.free(15_000) && !after.free(14_999));
        assert!(!store.all().await.expect("read").contains_key("bob"));
    }
}
