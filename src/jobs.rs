//! The scheduled jobs: refresh the agent list from the provider, and watch the account balance.
//! The work is plain async functions (tests call them directly); [`Jobs::schedule`] wraps each in
//! the cron scheduler in one line.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rust_decimal::Decimal;
use secrecy::SecretString;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::agents::source::{refresh_agents, AgentSource};
use crate::agents::Agents;
use crate::config::Settings;
use crate::lease::Lease;
use crate::provider::{ApiError, Balance, Telnyx};
use crate::sink::{JobNotice, Record, Sinks};
use crate::time::{Clock, Millis};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    job: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabels {
    currency: String,
}

/// Counts a job's consecutive failures; reports once per streak when it reaches the limit.
pub struct FailureStreak {
    job: &'static str,
    count: AtomicU32,
    alert_after: u32,
    /// Runs since start by result, for `/metrics`.
    runs: Family<RunLabels, Counter>,
}

impl FailureStreak {
    pub fn new(job: &'static str, alert_after: u32) -> FailureStreak {
        FailureStreak::counted(job, alert_after, Family::default())
    }

    fn counted(job: &'static str, alert_after: u32, runs: Family<RunLabels, Counter>) -> Self {
        FailureStreak {
            job,
            count: AtomicU32::new(0),
            alert_after,
            runs,
        }
    }

    fn ran(&self, result: &'static str) {
        let labels = RunLabels {
            job: self.job,
            result,
        };
        self.runs.get_or_create(&labels).inc();
    }

    pub fn record<T>(&self, result: &Result<T, ApiError>) -> Option<JobNotice> {
        match result {
            Ok(_) => {
                self.ran("ok");
                self.count.store(0, Ordering::Relaxed);
                None
            }
            Err(e) => {
                self.ran("error");
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

/// What the jobs act on, shared with the rest of the application.
#[derive(Clone)]
pub struct JobContext {
    pub agents: Arc<Agents>,
    pub sinks: Sinks,
    pub clock: Arc<dyn Clock>,
    /// Only the holder checks the balance (one alert, not one per replica).
    pub lease: Arc<Lease>,
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
    /// Agents already said to be unreachable (each is said once).
    unreachable_said: Mutex<std::collections::HashSet<String>>,
    /// The available credit at the last balance check, for `/metrics`.
    last_balance: Family<CurrencyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    cx: JobContext,
}

impl Jobs {
    /// The jobs for the Telnyx API with `key`, registering their metrics.
    pub fn new(
        settings: &Settings,
        key: SecretString,
        cx: JobContext,
        registry: &mut Registry,
    ) -> Jobs {
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "job_runs",
            "Scheduled job runs by job and result",
            runs.clone(),
        );
        let last_balance = Family::default();
        registry.register(
            "balance_available",
            "Available credit at the last balance check",
            last_balance.clone(),
        );
        let alert_after = settings.jobs.alert_after_failures;
        Jobs {
            api: Telnyx::new(&settings.telnyx, key),
            source: AgentSource {
                profile: settings.telnyx.outbound_voice_profile_id.clone(),
                sip_domain: settings.telnyx.sip_domain.clone(),
            },
            threshold: settings.balance.alert_below,
            remind_every: settings.balance.remind_every,
            balance: Mutex::new(BalanceState::default()),
            refreshed_once: AtomicBool::new(false),
            agents_failures: FailureStreak::counted("agents refresh", alert_after, runs.clone()),
            balance_failures: FailureStreak::counted("balance check", alert_after, runs),
            unreachable_said: Mutex::default(),
            last_balance,
            cx,
        }
    }

    fn tell(&self, at: Millis, kind: JobNotice) {
        self.cx.sinks.accept(Record::Job { at, kind });
    }

    /// One run of the agents refresh, with its records.
    pub async fn run_agents_refresh(&self) {
        let cx = &self.cx;
        let result = refresh_agents(&self.api, &cx.agents, &self.source).await;
        let first = result.is_ok() && !self.refreshed_once.swap(true, Ordering::Relaxed);
        let at = cx.clock.now_ms();
        if let Some(kind) = self.agents_failures.record(&result) {
            self.tell(at, kind);
        }
        let Ok(refresh) = result else { return };
        if let Some(change) = refresh.change {
            if first {
                tracing::info!(?change, "agent list loaded");
            } else {
                self.tell(at, change);
            }
        }
        let new: Vec<(String, String)> = {
            let mut said = self
                .unreachable_said
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            refresh
                .unreachable
                .into_iter()
                .filter(|u| said.insert(u.name.clone()))
                .map(|u| (u.name, u.reason.to_owned()))
                .collect()
        };
        if !new.is_empty() {
            self.tell(at, JobNotice::AgentsUnreachable { agents: new });
        }
    }

    /// One run of the balance check, with its records.
    pub async fn run_balance_check(&self) {
        let at = self.cx.clock.now_ms();
        let result = check_balance(
            &self.api,
            &self.balance,
            self.threshold,
            self.remind_every,
            at,
        )
        .await;
        if let Some(kind) = self.balance_failures.record(&result) {
            self.tell(at, kind);
        }
        if let Ok((balance, alert)) = result {
            self.tell(
                at,
                JobNotice::BalanceChecked {
                    available: balance.available_credit,
                    currency: balance.currency.clone(),
                },
            );
            let value = rust_decimal::prelude::ToPrimitive::to_f64(&balance.available_credit);
            let labels = CurrencyLabels {
                currency: balance.currency,
            };
            self.last_balance
                .get_or_create(&labels)
                .set(value.unwrap_or(f64::NAN));
            if let Some(kind) = alert {
                self.tell(at, kind);
            }
        }
    }

    /// Runs the first refresh (bounded by `limit`, so the first call rings real agents), then
    /// both jobs on their cron schedules: the refresh on every replica (when the agents come from
    /// the API), the balance check on the lease holder only.
    pub async fn schedule(
        self: Arc<Self>,
        settings: &Settings,
        limit: Duration,
    ) -> Result<JobScheduler, JobSchedulerError> {
        let from_api = settings.telnyx.agents_from_api;
        if from_api
            && tokio::time::timeout(limit, self.run_agents_refresh())
                .await
                .is_err()
        {
            tracing::warn!("the first agents refresh took too long; it will run again on schedule");
        }
        let scheduler = JobScheduler::new().await?;
        if from_api {
            let jobs = self.clone();
            let refresh = Job::new_async(settings.jobs.agents_refresh.as_str(), move |_, _| {
                let jobs = jobs.clone();
                Box::pin(async move { jobs.run_agents_refresh().await })
            })?;
            scheduler.add(refresh).await?;
        }
        let jobs = self;
        let balance = Job::new_async(settings.jobs.balance_check.as_str(), move |_, _| {
            let jobs = jobs.clone();
            Box::pin(async move {
                if jobs.cx.lease.holding() {
                    jobs.run_balance_check().await;
                }
            })
        })?;
        scheduler.add(balance).await?;
        scheduler.start().await?;
        Ok(scheduler)
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
