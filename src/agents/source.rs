//! Where the agents come from when the Telnyx API is used: the account's credential
//! connections, each an agent's SIP account.

use super::Agents;
use crate::domain::{Agent, Endpoint, LineId};
use crate::provider::{ApiError, CredentialConnection, Telnyx};
use crate::sink::JobNotice;

/// Which credential connections are agents, and how to ring them.
#[derive(Debug, Clone)]
pub struct AgentSource {
    /// Keep only connections on this outbound voice profile (`None`: any).
    pub profile: Option<String>,
    pub sip_domain: String,
}

/// The agents among `connections`: active, on the profile, with a valid SIP user name. The
/// display name is the connection name (or the user name). Returns the agents and how many
/// matching connections were skipped as unusable.
pub fn agents_from(
    connections: &[CredentialConnection],
    source: &AgentSource,
) -> (Vec<Agent>, usize) {
    let mut agents = Vec::new();
    let mut skipped = 0;
    for c in connections {
        let on_profile = match &source.profile {
            Some(p) => c.outbound_voice_profile_id.as_deref() == Some(p.as_str()),
            None => true,
        };
        if !c.active || !on_profile {
            continue;
        }
        let agent = c.user_name.as_deref().and_then(|user| {
            let endpoint = Endpoint::sip(&format!("sip:{user}@{}", source.sip_domain)).ok()?;
            let name = c.connection_name.as_deref().unwrap_or(user);
            let mut agent = Agent::new(name, endpoint).ok()?;
            agent.connection_id = Some(c.id.as_str().into());
            Some(agent)
        });
        match agent {
            Some(a) => agents.push(a),
            None => skipped += 1,
        }
    }
    agents.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(a.endpoint.as_str().cmp(b.endpoint.as_str()))
    });
    (agents, skipped)
}

/// Reads every credential connection and replaces the roster with the agents among them, at
/// once. On any error the roster keeps its last good list. Returns who was added and removed
/// (`None` when nothing changed).
pub async fn refresh_agents(
    api: &Telnyx,
    agents_now: &Agents,
    line: &LineId,
    source: &AgentSource,
) -> Result<Option<JobNotice>, ApiError> {
    let connections = api.credential_connections().await?;
    let (agents, skipped) = agents_from(&connections, source);
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "credential connections without a usable SIP user name were left out"
        );
    }
    let old = agents_now.all(line);
    let label = |a: &Agent| a.name.to_string();
    let added: Vec<String> = agents
        .iter()
        .filter(|a| !old.contains(a))
        .map(label)
        .collect();
    let removed: Vec<String> = old
        .iter()
        .filter(|a| !agents.contains(a))
        .map(label)
        .collect();
    tracing::info!(
        connections = connections.len(),
        agents = agents.len(),
        "agent list refreshed"
    );
    if added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    agents_now.replace(line, agents);
    Ok(Some(JobNotice::AgentsChanged { added, removed }))
}
