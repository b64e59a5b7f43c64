//! What the dashboard reads from the ledger: a line's tally since its day started, in one
//! aggregate query (the rows of a busy day are never loaded), and the latest voicemails.

use sqlx::Row;

use super::report::{Rules, Tally};
use super::{db_int, from_db, Ledger};
use crate::time::Millis;

/// A voicemail as the dashboard lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentVoicemail {
    pub id: String,
    pub call_sid: String,
    pub line: String,
    /// As the ledger keeps it (masked or hashed under privacy mode).
    pub caller: String,
    /// When the call ended.
    pub received_at: Millis,
    pub duration_secs: Option<u64>,
    /// pending, archived, failed, deleted, or "not archived".
    pub state: String,
}

impl Ledger {
    /// The tally of `line`'s calls started in `[from, to)`, counted by the database.
    pub async fn tally(
        &self,
        line: &str,
        from: Millis,
        to: Millis,
        rules: &Rules,
    ) -> Result<Tally, sqlx::Error> {
        // Every aggregate cast to BIGINT: PostgreSQL's SUM of BIGINT is NUMERIC.
        let rows = sqlx::query(
            "SELECT outcome, CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(SUM(CASE WHEN COALESCE(wait_secs, 0) < $4 THEN 1 ELSE 0 END) AS BIGINT) AS short_n, \
             CAST(SUM(CASE WHEN COALESCE(wait_secs, 0) <= $5 THEN 1 ELSE 0 END) AS BIGINT) AS within_n, \
             CAST(SUM(COALESCE(wait_secs, 0)) AS BIGINT) AS wait_sum, \
             CAST(SUM(COALESCE(talk_secs, 0)) AS BIGINT) AS talk_sum \
             FROM calls WHERE line = $1 AND started_at >= $2 AND started_at < $3 \
             GROUP BY outcome",
        )
        .bind(line)
        .bind(db_int(from))
        .bind(db_int(to))
        .bind(db_int(rules.short_abandon_secs))
        .bind(db_int(rules.service_level_secs))
        .fetch_all(&self.pool)
        .await?;
        let mut tally = Tally::default();
        for r in &rows {
            let outcome: Option<String> = r.try_get("outcome")?;
            let n = |name: &str| r.try_get::<i64, _>(name).map(from_db);
            tally.add(
                outcome.as_deref(),
                n("n")?,
                n("short_n")?,
                n("within_n")?,
                n("wait_sum")?,
                n("talk_sum")?,
            );
        }
        Ok(tally)
    }

    /// The latest `limit` voicemails (calls that ended in one), newest first, with their
    /// recording when the archive has one.
    pub async fn recent_voicemails(&self, limit: u32) -> Result<Vec<RecentVoicemail>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT c.call_sid, c.line, c.caller, c.started_at, c.ended_at, \
             r.id, r.duration_secs, r.state \
             FROM calls c LEFT JOIN recordings r \
             ON r.call_sid = c.call_sid AND r.kind = 'voicemail' \
             WHERE c.outcome = 'voicemail' ORDER BY c.started_at DESC, c.call_sid LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let duration: Option<i64> = r.try_get("duration_secs")?;
                let ended: Option<i64> = r.try_get("ended_at")?;
                let call_sid: String = r.try_get("call_sid")?;
                let id: Option<String> = r.try_get("id")?;
                let state: Option<String> = r.try_get("state")?;
                Ok(RecentVoicemail {
                    id: id.unwrap_or_else(|| format!("{call_sid}-voicemail")),
                    call_sid,
                    line: r.try_get("line")?,
                    caller: r.try_get("caller")?,
                    received_at: ended
                        .map_or_else(|| r.try_get("started_at").map(from_db), |e| Ok(from_db(e)))?,
                    duration_secs: duration.map(from_db),
                    // Without a row in the archive: not archived (the archive is off, or it failed).
                    state: state.unwrap_or_else(|| "not archived".to_owned()),
                })
            })
            .collect()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
