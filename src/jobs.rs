//! The scheduled jobs, as plain async functions (tests call them directly; the cron scheduler in
//! [`crate::startup`] only wraps them): refresh the agent list from the provider, and watch the
//! account balance.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::call::Millis;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{Agent, Endpoint};
use crate::notify::{JobNotice, Notification, Notifier};
use crate::provider::{ApiError, Balance, CredentialConnection, Telnyx};
use crate::roster::Roster;

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
    roster: &Roster,
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
    let old = roster.all();
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
    roster.replace(agents);
    Ok(Some(JobNotice::AgentsChanged { added, removed }))
}

/// What the balance watch remembers between checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceState {
    pub low: bool,
    pub last_alert: Option<Millis>,
}

/// The balance rule, pure: alert once when `available` falls below `threshold`, remind at most
/// every `remind_every` while it stays low, say so when it recovers.
pub fn balance_decision(
    state: &mut BalanceState,
    available: Decimal,
    threshold: Decimal,
    currency: &str,
    now: Millis,
    remind_every: Duration,
) -> Option<JobNotice> {
    if available < threshold {
        let reminder = state.low;
        let due = match state.last_alert {
            Some(last) if reminder => now.saturating_sub(last) >= remind_every.as_millis() as u64,
            _ => true,
        };
        state.low = true;
        if !due {
            return None;
        }
        state.last_alert = Some(now);
        Some(JobNotice::BalanceLow {
            available,
            threshold,
            currency: currency.to_owned(),
            reminder,
        })
    } else if state.low {
        *state = BalanceState::default();
        Some(JobNotice::BalanceRecovered {
            available,
            threshold,
            currency: currency.to_owned(),
        })
    } else {
        None
    }
}

/// Reads the balance and applies [`balance_decision`]; returns the balance read and the alert.
pub async fn check_balance(
    api: &Telnyx,
    state: &Mutex<BalanceState>,
    threshold: Decimal,
    remind_every: Duration,
    now: Millis,
) -> Result<(Balance, Option<JobNotice>), ApiError> {
    let balance = api.balance().await?;
    tracing::info!(available = %balance.available_credit, currency = %balance.currency, "balance checked");
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let alert = balance_decision(
        &mut state,
        balance.available_credit,
        threshold,
        &balance.currency,
        now,
        remind_every,
    );
    Ok((balance, alert))
}

/// Counts a job's consecutive failures; reports once per streak when it reaches the limit.
pub struct FailureStreak {
    job: &'static str,
    count: AtomicU32,
    alert_after: u32,
    /// Runs since start, for the metrics.
    pub ok_total: AtomicU64,
    pub failed_total: AtomicU64,
}

impl FailureStreak {
    pub fn new(job: &'static str, alert_after: u32) -> FailureStreak {
        FailureStreak {
            job,
            count: AtomicU32::new(0),
            alert_after,
            ok_total: AtomicU64::new(0),
            failed_total: AtomicU64::new(0),
        }
    }

    pub fn record<T>(&self, result: &Result<T, ApiError>) -> Option<JobNotice> {
        match result {
            Ok(_) => {
                self.ok_total.fetch_add(1, Ordering::Relaxed);
                self.count.store(0, Ordering::Relaxed);
                None
            }
            Err(e) => {
                self.failed_total.fetch_add(1, Ordering::Relaxed);
                let failures = self.count.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(job = self.job, failures, error = %e, "job failed");
                (failures == self.alert_after).then(|| JobNotice::JobFailing {
                    job: self.job,
                    failures,
                    error: e.to_string(),
                })
            }
        }
    }
}

/// Everything the scheduled jobs need, built once from the settings when an API key is set.
pub struct Jobs {
    pub api: Telnyx,
    pub source: AgentSource,
    pub threshold: Decimal,
    pub remind_every: Duration,
    pub balance: Mutex<BalanceState>,
    /// The first successful refresh fills the list; it is logged, not announced.
    pub refreshed_once: AtomicBool,
    pub agents_failures: FailureStreak,
    pub balance_failures: FailureStreak,
    /// The last balance read, for the metrics.
    last_balance: Mutex<Option<Balance>>,
}

impl Jobs {
    /// `None` when no Telnyx API key is configured (static agents, no balance check).
    pub fn from_settings(settings: &Settings) -> Option<Jobs> {
        let key = settings.telnyx.key()?.clone();
        let profile = settings.telnyx.outbound_voice_profile_id.trim();
        Some(Jobs {
            api: Telnyx::new(&settings.telnyx, key),
            source: AgentSource {
                profile: (!profile.is_empty()).then(|| profile.to_owned()),
                sip_domain: settings.telnyx.sip_domain.trim().to_owned(),
            },
            // Both were checked by Settings::validate.
            threshold: settings.balance.threshold().unwrap_or_default(),
            remind_every: settings
                .balance
                .remind_every()
                .unwrap_or(Duration::from_secs(86_400)),
            balance: Mutex::new(BalanceState::default()),
            refreshed_once: AtomicBool::new(false),
            agents_failures: FailureStreak::new(
                "agents refresh",
                settings.jobs.alert_after_failures,
            ),
            balance_failures: FailureStreak::new(
                "balance check",
                settings.jobs.alert_after_failures,
            ),
            last_balance: Mutex::new(None),
        })
    }

    /// (job, successful runs, failed runs) since start.
    pub fn run_counts(&self) -> [(&'static str, u64, u64); 2] {
        let counts = |s: &FailureStreak| {
            (
                s.job,
                s.ok_total.load(Ordering::Relaxed),
                s.failed_total.load(Ordering::Relaxed),
            )
        };
        [
            counts(&self.agents_failures),
            counts(&self.balance_failures),
        ]
    }

    /// The last balance read, as a float for the metrics, with its currency.
    pub fn last_balance(&self) -> Option<(f64, String)> {
        let last = self.last_balance.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().map(|b| {
            (
                rust_decimal::prelude::ToPrimitive::to_f64(&b.available_credit).unwrap_or(f64::NAN),
                b.currency.clone(),
            )
        })
    }

    /// One run of the agents refresh, with its notifications.
    pub async fn run_agents_refresh(
        &self,
        roster: &Roster,
        notifier: &dyn Notifier,
        clock: &dyn Clock,
    ) {
        let result = refresh_agents(&self.api, roster, &self.source).await;
        let first = result.is_ok() && !self.refreshed_once.swap(true, Ordering::Relaxed);
        let at = clock.now_ms();
        if let Some(kind) = self.agents_failures.record(&result) {
            notifier.notify(Notification::Job { at, kind });
        }
        if let Ok(Some(change)) = result {
            if first {
                tracing::info!(?change, "agent list loaded");
            } else {
                notifier.notify(Notification::Job { at, kind: change });
            }
        }
    }

    /// One run of the balance check, with its notifications.
    pub async fn run_balance_check(&self, notifier: &dyn Notifier, clock: &dyn Clock) {
        let at = clock.now_ms();
        let result = check_balance(
            &self.api,
            &self.balance,
            self.threshold,
            self.remind_every,
            at,
        )
        .await;
        if let Some(kind) = self.balance_failures.record(&result) {
            notifier.notify(Notification::Job { at, kind });
        }
        if let Ok((balance, alert)) = result {
            *self.last_balance.lock().unwrap_or_else(|p| p.into_inner()) = Some(balance);
            if let Some(kind) = alert {
                notifier.notify(Notification::Job { at, kind });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn the_balance_rule_alerts_once_reminds_and_recovers() {
        let mut state = BalanceState::default();
        let day = Duration::from_secs(86_400);
        let hour = 3_600_000;
        let t = dec("80.00");
        let mut check = |available: &str, at: Millis| {
            balance_decision(&mut state, dec(available), t, "USD", at, day)
        };
        assert_eq!(check("120.00", 0), None);
        // Exactly at the threshold is not below it; a cent less is.
        assert_eq!(check("80.00", hour), None);
        assert!(matches!(
            check("79.99", 2 * hour),
            Some(JobNotice::BalanceLow {
                reminder: false,
                ..
            })
        ));
        assert_eq!(check("50.00", 3 * hour), None);
        assert_eq!(check("40.00", 25 * hour), None);
        assert!(matches!(
            check("40.00", 26 * hour),
            Some(JobNotice::BalanceLow { reminder: true, .. })
        ));
        assert!(matches!(
            check("80.00", 27 * hour),
            Some(JobNotice::BalanceRecovered { .. })
        ));
        assert_eq!(check("90.00", 28 * hour), None);
        assert!(matches!(
            check("10", 29 * hour),
            Some(JobNotice::BalanceLow {
                reminder: false,
                ..
            })
        ));
    }

    #[test]
    fn decimal_amounts_compare_exactly() {
        // 0.1 + 0.2 would not be 0.3 in floating point.
        assert_eq!(dec("0.1") + dec("0.2"), dec("0.3"));
        assert!(dec("79.999999999999999999") < dec("80"));
    }

    #[test]
    fn a_failure_streak_is_reported_once() {
        let streak = FailureStreak::new("agents refresh", 3);
        let err: Result<(), ApiError> = Err(ApiError::Network("down".into()));
        assert_eq!(streak.record(&err), None);
        assert_eq!(streak.record(&err), None);
        assert!(matches!(
            streak.record(&err),
            Some(JobNotice::JobFailing { failures: 3, .. })
        ));
        assert_eq!(streak.record(&err), None);
        assert_eq!(streak.record(&Ok(())), None);
        assert_eq!(streak.record(&err), None);
    }
}
