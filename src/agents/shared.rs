//! With several replicas: the agent list the lease holder read from the provider, shared through
//! Redis, so every replica rings the same agents. One key holds the whole list (JSON).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::Agents;
use crate::call::redis_store::bounded;
use crate::call::StoreError;
use crate::domain::Agent;
use crate::lease::Lease;

/// Why the shared list could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("shared agent list: {0}")]
    Json(#[from] serde_json::Error),
}

/// The agent list, as the lease holder last read it from the provider.
pub struct SharedAgents {
    conn: ConnectionManager,
    key: String,
}

/// Keeps one line's local roster in step with the shared list.
pub struct AgentSync {
    pub shared: SharedAgents,
    pub agents: Arc<Agents>,
    pub lease: Arc<Lease>,
    /// Whether this replica's list comes from the provider (then the lease holder publishes it).
    pub publishes: bool,
    pub every: Duration,
}

impl SharedAgents {
    pub fn new(conn: ConnectionManager, key: String) -> SharedAgents {
        SharedAgents { conn, key }
    }

    pub async fn publish(&self, agents: &[Agent]) -> Result<(), SharedError> {
        let json = serde_json::to_string(agents)?;
        let mut conn = self.conn.clone();
        bounded(async { Ok(conn.set::<_, _, ()>(&self.key, json).await?) }).await?;
        Ok(())
    }

    /// The published list, if any.
    pub async fn fetch(&self) -> Result<Option<Vec<Agent>>, SharedError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = bounded(async { Ok(conn.get(&self.key).await?) }).await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }
}

impl AgentSync {
    /// Every `every`: the lease holder, when its list comes from the provider (`publishes`),
    /// shares it if the shared one differs; every other replica takes the shared list when it
    /// differs from its own. Runs until the task is stopped.
    pub async fn keep_in_step(self) {
        let AgentSync {
            shared: this,
            agents,
            lease,
            publishes,
            every,
        } = self;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let local = agents.everyone();
            let shared = match this.fetch().await {
                Ok(shared) => shared,
                Err(e) => {
                    tracing::warn!(error = %e, "shared agent list not readable");
                    continue;
                }
            };
            let same = shared.as_deref() == Some(&*local);
            if same {
                continue;
            }
            if publishes && lease.holding() {
                if let Err(e) = this.publish(&local).await {
                    tracing::warn!(error = %e, "agent list not shared");
                }
            } else if let Some(list) = shared {
                tracing::info!(
                    agents = list.len(),
                    "agent list updated from the shared one"
                );
                agents.replace_all(list);
            }
        }
    }
}
