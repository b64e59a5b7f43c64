//! Where the agents come from when the Telnyx API is used: the account's credential
//! connections, each an agent's SIP account.

use super::Agents;
use crate::domain::{Agent, Endpoint};
use crate::provider::{ApiError, CredentialConnection, Telnyx};
use crate::sink::JobNotice;

/// Which credential connections are agents, and how to ring them.
#[derive(Debug, Clone)]
pub struct AgentSource {
    /// Keep only connections on this outbound voice profile (`None`: any).
    pub profile: Option<String>,
    pub sip_domain: String,
}

/// An agent Switchboard cannot ring, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub name: String,
    pub reason: &'static str,
}

/// Why a connection cannot receive Switchboard's calls, if it cannot. Telnyx: "SIP URI calling
/// is disabled by default and must be explicitly enabled for each connection"; user names "must
/// begin with a non-numeric character". A connection that does not say (no `inbound` settings in
/// the answer) is rung.
fn unreachable_reason(c: &CredentialConnection, user: &str) -> Option<&'static str> {
    if c.sip_uri_calling.as_deref() == Some("disabled") {
        return Some("SIP URI calling is disabled on their connection (set Receive SIP URI Calls to From anyone)");
    }
    if user.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("their SIP user name starts with a digit, which Telnyx does not allow for SIP URI calls");
    }
    None
}

/// What one read of the connections found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub agents: Vec<Agent>,
    /// Matching connections without a usable SIP user name.
    pub skipped: usize,
    /// Agents who exist but cannot be rung (left out of the roster).
    pub unreachable: Vec<Unreachable>,
}

/// The agents among `connections`: active, on the profile, with a valid SIP user name, and able
/// to receive SIP URI calls. The display name is the connection name (or the user name).
pub fn agents_from(connections: &[CredentialConnection], source: &AgentSource) -> Found {
    let mut agents = Vec::new();
    let mut skipped = 0;
    let mut unreachable = Vec::new();
    for c in connections {
        let on_profile = match &source.profile {
            Some(p) => c.outbound_voice_profile_id.as_deref() == Some(p.as_str()),
            None => true,
        };
        if !c.active || !on_profile {
            continue;
        }
        if let Some(user) = c.user_name.as_deref() {
            if let Some(reason) = unreachable_reason(c, user) {
                let name = c.connection_name.as_deref().unwrap_or(user).to_owned();
                unreachable.push(Unreachable { name, reason });
                continue;
            }
        }
        let agent = c.user_name.as_deref().and_then(|user| {
            let endpoint = Endpoint::sip(&format!("sip:{user}@{}", source.sip_domain)).ok()?;
            let name = c.connection_name.as_deref().unwrap_or(user);
            let mut agent = Agent::new(name, endpoint).ok()?.with_id(user);
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
    Found {
        agents,
        skipped,
        unreachable,
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refresh {
    /// Who was added and removed (`None` when nothing changed).
    pub change: Option<JobNotice>,
    /// Agents left out because they cannot be rung.
    pub unreachable: Vec<Unreachable>,
}

/// Reads every credential connection and replaces the roster with the agents among them, at
/// once. On any error the roster keeps its last good list.
pub async fn refresh_agents(
    api: &Telnyx,
    agents_now: &Agents,
    source: &AgentSource,
) -> Result<Refresh, ApiError> {
    let connections = api.credential_connections().await?;
    let Found {
        agents,
        skipped,
        unreachable,
    } = agents_from(&connections, source);
    for u in &unreachable {
        tracing::warn!(agent = %u.name, reason = u.reason, "agent cannot receive calls: left out");
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "credential connections without a usable SIP user name were left out"
        );
    }
    let old = agents_now.everyone();
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
    let change = if added.is_empty() && removed.is_empty() {
        None
    } else {
        agents_now.replace_all(agents);
        Some(JobNotice::AgentsChanged { added, removed })
    };
    Ok(Refresh {
        change,
        unreachable,
    })
}
