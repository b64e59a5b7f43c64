//! The call ledger: every inbound call's row (line, caller, when it started, was answered and
//! ended, by whom, its outcome, wait and talk time) and its events, in SQLite (a file under
//! `paths.data`, no setup) or PostgreSQL (`ledger.url`, for several replicas). The same SQL and
//! the same embedded migrations (`migrations/`) serve both, through sqlx's `Any` driver.
//!
//! Facts reach it through [`sink::LedgerSink`], a bounded queue off the call path. Each fact is
//! one transaction: its event (keyed `<call>/<kind>`: inserted once, a duplicate is ignored) and
//! an upsert of the call's row whose every column only ever fills in or settles, so a fact
//! written twice, or by two replicas, leaves the same row.

pub mod archive;
pub mod cli;
pub mod report;
pub mod sink;
pub mod store;
pub mod today;

use serde::Serialize;
use sqlx::any::{install_default_drivers, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::call::{Fact, FactKind, Outcome};
use crate::domain::CallSid;
use crate::time::Millis;

/// How caller numbers are kept in the ledger (`privacy.ledger_numbers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Numbers {
    /// As received.
    #[default]
    Full,
    /// `+1202•••0142`, as Slack shows them under privacy mode.
    Masked,
    /// A keyed hash (`hmac-sha256:…`, with `privacy.hash_key`): the same caller gives the same
    /// value, so repeat callers can be counted, but the number cannot be read back.
    Hashed,
}

/// What the ledger does to a caller number before keeping it.
#[derive(Clone)]
pub enum Keep {
    Full,
    Masked,
    Hashed(secrecy::SecretString),
}

/// The prefix of a hashed number.
const HASHED: &str = "hmac-sha256:";

impl Keep {
    pub fn keep(&self, number: &str) -> String {
        use hmac::Mac;
        use secrecy::ExposeSecret;
        match self {
            Keep::Full => number.to_owned(),
            Keep::Masked => crate::sink::mask::mask(number),
            Keep::Hashed(key) => {
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(key.expose_secret().as_bytes())
                        .expect("HMAC takes keys of any length");
                mac.update(number.as_bytes());
                let digest = mac.finalize().into_bytes();
                format!("{HASHED}{}", archive::hex(&digest[..16]))
            }
        }
    }
}

/// What one fact writes: its event, and what it tells of the call's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub call_sid: String,
    pub at: Millis,
    pub kind: &'static str,
    pub line: String,
    pub caller: String,
    pub called: String,
    /// When the call started, as this fact shows it (its own time, less any wait it reports).
    pub started_at: Millis,
    pub answered_at: Option<Millis>,
    pub answered_by: Option<String>,
    pub ended_at: Option<Millis>,
    /// Only a final outcome (a settled end, or the settling).
    pub outcome: Option<&'static str>,
    pub wait_secs: Option<u64>,
    pub talk_secs: Option<u64>,
    pub detail: Option<String>,
    /// The event's JSON.
    pub data: String,
    /// Said after `kind` in the event's id, for kinds a call may have several of (operators'
    /// actions, a room's recordings): empty for the others, so a repeated fact is written once.
    pub repeat: String,
}

impl Entry {
    /// The entry of `fact`, decided for call `sid` at `at`.
    pub fn of(sid: &CallSid, at: Millis, fact: &Fact, numbers: &Keep) -> Entry {
        let secs = |s: u64| at.saturating_sub(s.saturating_mul(1000));
        let mut e = Entry {
            call_sid: sid.as_str().to_owned(),
            at,
            kind: "",
            line: fact.line.as_str().to_owned(),
            caller: numbers.keep(fact.from.as_str()),
            called: fact.to.as_str().to_owned(),
            started_at: at,
            answered_at: None,
            answered_by: None,
            ended_at: None,
            outcome: fact.kind.final_outcome().map(Outcome::label),
            wait_secs: None,
            talk_secs: None,
            detail: None,
            data: String::new(),
            repeat: String::new(),
        };
        let data = match &fact.kind {
            FactKind::Ringing { agents } => {
                e.kind = "ringing";
                serde_json::json!({ "agents": agents })
            }
            FactKind::Answered { agent, after_secs } => {
                e.kind = "answered";
                e.started_at = secs(*after_secs);
                e.answered_at = Some(at);
                e.answered_by = agent.as_deref().map(str::to_owned);
                e.wait_secs = Some(*after_secs);
                serde_json::json!({ "agent": agent, "after_secs": after_secs })
            }
            FactKind::SentToVoicemail { reason } => {
                e.kind = "sent_to_voicemail";
                e.detail = Some(reason.describe().to_owned());
                serde_json::json!({ "reason": reason.describe() })
            }
            FactKind::ConversationRecorded { duration_secs, .. } => {
                e.kind = "conversation_recorded";
                serde_json::json!({ "duration_secs": duration_secs })
            }
            FactKind::Controlled { action, who, by } => {
                e.kind = "control";
                e.repeat = format!("/{at}/{action}/{who}");
                e.detail = Some(format!("{action} {who} by {by}"));
                serde_json::json!({ "action": action, "who": who, "by": by })
            }
            FactKind::ConferenceRecorded {
                duration_secs, url, ..
            } => {
                e.kind = "conference_recorded";
                let digest = <sha2::Sha256 as sha2::Digest>::digest(url.as_bytes());
                e.repeat = std::iter::once("/".to_owned())
                    .chain(digest[..8].iter().map(|b| format!("{b:02x}")))
                    .collect();
                serde_json::json!({ "duration_secs": duration_secs })
            }
            FactKind::VoicemailLeft { duration_secs, .. } => {
                e.kind = "voicemail_left";
                serde_json::json!({ "duration_secs": duration_secs })
            }
            FactKind::Ended { outcome, settled } => {
                e.kind = "ended";
                e.ended_at = Some(at);
                e.apply(outcome, at);
                serde_json::json!({ "outcome": outcome.label(), "settled": settled })
            }
            FactKind::Settled { outcome } => {
                e.kind = "settled";
                e.apply(outcome, at);
                serde_json::json!({ "outcome": outcome.label() })
            }
            FactKind::Refused { live_calls } => {
                e.kind = "refused";
                e.ended_at = Some(at);
                e.outcome = Some("refused");
                e.detail = Some(format!("{live_calls} live calls"));
                serde_json::json!({ "live_calls": live_calls })
            }
            FactKind::AfterHours { action } => {
                e.kind = "after_hours";
                e.detail = Some(format!("after hours: {action}"));
                serde_json::json!({ "action": action })
            }
            FactKind::TurnedAway { reason } => {
                e.kind = "turned_away";
                e.detail = Some((*reason).to_owned());
                serde_json::json!({ "reason": reason })
            }
        };
        e.data = data.to_string();
        e
    }

    /// `later` (a later fact of the same call) folded in, as the upsert would fold it.
    fn absorb(&mut self, later: &Entry) {
        self.started_at = self.started_at.min(later.started_at);
        self.answered_at = self.answered_at.or(later.answered_at);
        if self.answered_by.is_none() {
            self.answered_by = later.answered_by.clone();
        }
        self.ended_at = self.ended_at.or(later.ended_at);
        self.outcome = later.outcome.or(self.outcome);
        self.wait_secs = self.wait_secs.or(later.wait_secs);
        self.talk_secs = later.talk_secs.or(self.talk_secs);
        if self.detail.is_none() {
            self.detail = later.detail.clone();
        }
    }

    /// What an outcome tells of the row (an `Ended`'s, or a `Settled`'s).
    fn apply(&mut self, outcome: &Outcome, at: Millis) {
        match outcome {
            Outcome::Answered { talk_secs, .. } => self.talk_secs = Some(*talk_secs),
            Outcome::Abandoned { waited_secs } => {
                self.wait_secs = Some(*waited_secs);
                self.started_at = at.saturating_sub(waited_secs.saturating_mul(1000));
            }
            Outcome::TurnedAway { reason } => self.detail = Some(reason.label().to_owned()),
            _ => {}
        }
    }
}

/// One write, in the order the facts came.
#[derive(Debug, Clone)]
pub enum Write {
    Call(Box<Entry>),
    Leg(LegEntry),
}

/// What one leg fact writes.
#[derive(Debug, Clone, PartialEq)]
pub struct LegEntry {
    pub call_sid: String,
    pub at: Millis,
    pub fact: crate::call::LegFact,
}

/// One agent's part in one `<Dial>`, as the reports read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LegRow {
    pub agent_id: String,
    pub agent_name: String,
    pub answered: bool,
    pub rang_out: bool,
}

/// One call as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    pub call_sid: String,
    pub line: String,
    pub caller: String,
    pub called: String,
    pub started_at: Millis,
    pub answered_at: Option<Millis>,
    pub answered_by: Option<String>,
    pub ended_at: Option<Millis>,
    pub outcome: Option<String>,
    pub wait_secs: Option<u64>,
    pub talk_secs: Option<u64>,
    pub detail: Option<String>,
}

/// One event of a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub at: Millis,
    pub kind: String,
    pub data: serde_json::Value,
}

/// Which calls to list: started in `[from, to)`, on `line`, with `outcome`; newest first, at
/// most `limit`.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub line: Option<String>,
    pub outcome: Option<String>,
    pub limit: u32,
}

/// The columns of a call row, in the order the upsert binds them.
const UPSERT_HEAD: &str = "
INSERT INTO calls (call_sid, line, caller, called, started_at, answered_at, answered_by,
                   ended_at, outcome, wait_secs, talk_secs, detail, updated_at) VALUES ";
const UPSERT_ARITY: usize = 13;
/// Each column only fills in or settles, so writing a fact again changes nothing.
const UPSERT_TAIL: &str = "
ON CONFLICT (call_sid) DO UPDATE SET
    started_at  = CASE WHEN excluded.started_at < calls.started_at
                       THEN excluded.started_at ELSE calls.started_at END,
    answered_at = COALESCE(calls.answered_at, excluded.answered_at),
    answered_by = COALESCE(calls.answered_by, excluded.answered_by),
    ended_at    = COALESCE(calls.ended_at, excluded.ended_at),
    outcome     = COALESCE(excluded.outcome, calls.outcome),
    wait_secs   = COALESCE(calls.wait_secs, excluded.wait_secs),
    talk_secs   = COALESCE(excluded.talk_secs, calls.talk_secs),
    detail      = COALESCE(calls.detail, excluded.detail),
    updated_at  = CASE WHEN excluded.updated_at > calls.updated_at
                       THEN excluded.updated_at ELSE calls.updated_at END";

/// Rows per statement, so no statement binds more than 999 values (SQLite's old limit).
const ROWS_PER_STATEMENT: usize = 64;

/// `($1, …, $arity), ($arity+1, …)` for `rows` rows.
fn placeholders(rows: usize, arity: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=arity).map(|c| format!("${}", r * arity + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rows` rows of 7 parameters for `legs` (call, round, group, agent id, agent name, rung at,
/// updated at), each followed by the end of its `<Dial>` if `dial_ends` already has it.
fn leg_rows(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let p = |c: usize| format!("${}", r * 7 + c);
            let same = format!(
                "d.call_sid = {} AND d.round = {} AND d.grp = {}",
                p(1),
                p(2),
                p(3)
            );
            format!(
                "({}, {}, {}, {}, {}, {}, {}, \
                 (SELECT d.dial_end FROM dial_ends d WHERE {same}), \
                 (SELECT d.answered_at FROM dial_ends d WHERE {same} AND d.agent_id = {}))",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(4)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const INSERT_EVENTS: &str = "INSERT INTO events (event_id, call_sid, at, kind, data) VALUES ";
const EVENT_ARITY: usize = 5;
const EVENTS_TAIL: &str = " ON CONFLICT (event_id) DO NOTHING";

const COLUMNS: &str = "call_sid, line, caller, called, started_at, answered_at, answered_by, \
                       ended_at, outcome, wait_secs, talk_secs, detail";

/// An instant as a filter names it: RFC 3339 (`2026-11-22T09:00:00-05:00`), or a duration back
/// from `now` (`24h`, `7d` is not a duration: write `168h`).
pub fn instant(text: &str, now: Millis) -> Result<Millis, String> {
    use crate::time::{BadInstant, Toward};
    crate::time::instant(text, now, Toward::Past).map_err(|e| match e {
        BadInstant::BeforeEpoch => "is before 1970".to_owned(),
        BadInstant::Unreadable => format!(
            "must be an RFC 3339 instant (2026-11-22T09:00:00-05:00) or a duration back from now (24h), not `{}`",
            text.trim().chars().take(40).collect::<String>()
        ),
    })
}

/// A row as people read it: caller masked when `mask`.
pub fn shown(row: &CallRow, mask: bool) -> CallRow {
    let mut row = row.clone();
    row.caller = shown_caller(&row.caller, mask);
    row
}

/// A caller as the ledger keeps it, as people may read it: masked when `mask`. A hash is shown as
/// is; a number the ledger keeps masked is not masked again.
pub fn shown_caller(caller: &str, mask: bool) -> String {
    if mask && !caller.starts_with(HASHED) && !caller.contains(crate::sink::mask::DOTS) {
        crate::sink::mask::mask(caller)
    } else {
        caller.to_owned()
    }
}

pub(crate) fn db_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The ledger's database.
#[derive(Clone)]
pub struct Ledger {
    pool: AnyPool,
}

/// Why the ledger could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("paths.data {0}: {1}")]
    Dir(std::path::PathBuf, std::io::Error),
    /// The message of the driver (never the URL, which may hold a password).
    #[error("{0}")]
    Database(#[from] sqlx::Error),
}

impl Ledger {
    /// The ledger the configuration names: `ledger.url`, else SQLite in `paths.data`. `None`
    /// when `ledger.enabled` is false.
    pub async fn open(settings: &crate::config::Settings) -> Result<Option<Ledger>, OpenError> {
        use secrecy::ExposeSecret;
        if !settings.ledger.enabled {
            return Ok(None);
        }
        let url = match &settings.ledger.url {
            Some(url) => url.expose_secret().trim().to_owned(),
            None => Ledger::sqlite_in(&settings.paths.data)
                .map_err(|e| OpenError::Dir(settings.paths.data.clone(), e))?,
        };
        Ok(Some(Ledger::connect(&url).await?))
    }

    /// Connects to `url` (`sqlite://…?mode=rwc` or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Ledger, sqlx::Error> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // Readers (the admin API, the CLI) never wait for the writer.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Ledger { pool })
    }

    /// The SQLite URL of the ledger file in `dir`, which is created if missing.
    pub fn sqlite_in(dir: &std::path::Path) -> std::io::Result<String> {
        std::fs::create_dir_all(dir)?;
        Ok(format!(
            "sqlite://{}?mode=rwc",
            dir.join("switchboard.db").display()
        ))
    }

    /// Writes `writes` in one transaction, idempotently: each can be written again harmlessly.
    /// The facts of one call in the batch are folded into one row first, and rows and events go
    /// in a few multi-row statements.
    pub async fn write_all(&self, writes: &[Write], now: Millis) -> Result<(), sqlx::Error> {
        let mut rows: Vec<Entry> = Vec::new();
        let mut events: Vec<&Entry> = Vec::new();
        for write in writes {
            if let Write::Call(e) = write {
                events.push(e);
                match rows.iter_mut().find(|r| r.call_sid == e.call_sid) {
                    Some(row) => row.absorb(e),
                    None => rows.push(Entry::clone(e)),
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "{UPSERT_HEAD}{}{UPSERT_TAIL}",
                placeholders(chunk.len(), UPSERT_ARITY)
            );
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(e.call_sid.clone())
                    .bind(e.line.clone())
                    .bind(e.caller.clone())
                    .bind(e.called.clone())
                    .bind(db_int(e.started_at))
                    .bind(e.answered_at.map(db_int))
                    .bind(e.answered_by.clone())
                    .bind(e.ended_at.map(db_int))
                    .bind(e.outcome)
                    .bind(e.wait_secs.map(db_int))
                    .bind(e.talk_secs.map(db_int))
                    .bind(e.detail.clone())
                    .bind(db_int(now));
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in events.chunks(ROWS_PER_STATEMENT * 2) {
            let sql = format!(
                "{INSERT_EVENTS}{}{EVENTS_TAIL}",
                placeholders(chunk.len(), EVENT_ARITY)
            );
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(format!("{}/{}{}", e.call_sid, e.kind, e.repeat))
                    .bind(e.call_sid.clone())
                    .bind(db_int(e.at))
                    .bind(e.kind)
                    .bind(e.data.clone());
            }
            query.execute(&mut *tx).await?;
        }
        for write in writes {
            if let Write::Leg(e) = write {
                Ledger::write_leg(&mut tx, e, now).await?;
            }
        }
        tx.commit().await
    }

    async fn write_leg(
        conn: &mut AnyConnection,
        e: &LegEntry,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        use crate::call::LegFact;
        match &e.fact {
            LegFact::Rang {
                round,
                group,
                agents,
            } => {
                // The end of this <Dial> may have come first (another replica's write): each row
                // takes it from `dial_ends` as it is inserted.
                for chunk in agents.chunks(ROWS_PER_STATEMENT) {
                    let sql = format!(
                        "INSERT INTO legs (call_sid, round, grp, agent_id, agent_name, rung_at, \
                         updated_at, dial_end, answered_at) VALUES {} \
                         ON CONFLICT (call_sid, round, grp, agent_id) DO NOTHING",
                        leg_rows(chunk.len())
                    );
                    let mut query = sqlx::query(&sql);
                    for (id, name) in chunk {
                        query = query
                            .bind(e.call_sid.clone())
                            .bind(i64::from(*round))
                            .bind(i64::from(*group))
                            .bind(id.to_string())
                            .bind(name.to_string())
                            .bind(db_int(e.at))
                            .bind(db_int(now));
                    }
                    query.execute(&mut *conn).await?;
                }
                Ok(())
            }
            LegFact::Taken {
                round,
                group,
                agent_id,
                ..
            } => {
                // Answered wins over rang out; the first answer's agent and time stay.
                sqlx::query(
                    "INSERT INTO dial_ends (call_sid, round, grp, dial_end, agent_id, \
                     answered_at, updated_at) VALUES ($1, $2, $3, 'answered', $4, $5, $6) \
                     ON CONFLICT (call_sid, round, grp) DO UPDATE SET dial_end = 'answered', \
                     agent_id = COALESCE(dial_ends.agent_id, excluded.agent_id), \
                     answered_at = COALESCE(dial_ends.answered_at, excluded.answered_at), \
                     updated_at = excluded.updated_at",
                )
                .bind(&e.call_sid)
                .bind(i64::from(*round))
                .bind(i64::from(*group))
                .bind(agent_id.as_deref().map(str::to_owned))
                .bind(agent_id.as_ref().map(|_| db_int(e.at)))
                .bind(db_int(now))
                .execute(&mut *conn)
                .await?;
                Ledger::end_legs(conn, &e.call_sid, *round, *group, now).await
            }
            LegFact::RangOut { round, group } => {
                sqlx::query(
                    "INSERT INTO dial_ends (call_sid, round, grp, dial_end, updated_at) \
                     VALUES ($1, $2, $3, 'rang_out', $4) \
                     ON CONFLICT (call_sid, round, grp) DO NOTHING",
                )
                .bind(&e.call_sid)
                .bind(i64::from(*round))
                .bind(i64::from(*group))
                .bind(db_int(now))
                .execute(&mut *conn)
                .await?;
                Ledger::end_legs(conn, &e.call_sid, *round, *group, now).await
            }
        }
    }

    /// Applies the end of `<Dial>` (`round`, `group`), if it is known, to the legs written so far.
    async fn end_legs(
        conn: &mut AnyConnection,
        call_sid: &str,
        round: u8,
        group: u8,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        const SAME_DIAL: &str =
            "d.call_sid = legs.call_sid AND d.round = legs.round AND d.grp = legs.grp";
        let sql = format!(
            "UPDATE legs SET \
             dial_end = (SELECT d.dial_end FROM dial_ends d WHERE {SAME_DIAL}), \
             answered_at = COALESCE(legs.answered_at, (SELECT d.answered_at FROM dial_ends d \
                 WHERE {SAME_DIAL} AND d.agent_id = legs.agent_id)), \
             updated_at = $4 \
             WHERE call_sid = $1 AND round = $2 AND grp = $3 \
             AND EXISTS (SELECT 1 FROM dial_ends d WHERE {SAME_DIAL})"
        );
        sqlx::query(&sql)
            .bind(call_sid)
            .bind(i64::from(round))
            .bind(i64::from(group))
            .bind(db_int(now))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The legs of the calls of `line` started in `[from, to)`.
    pub async fn legs(
        &self,
        line: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<LegRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT l.agent_id, l.agent_name, l.answered_at, l.dial_end FROM legs l \
             JOIN calls c ON c.call_sid = l.call_sid \
             WHERE c.line = $1 AND c.started_at >= $2 AND c.started_at < $3",
        )
        .bind(line)
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let answered: Option<i64> = r.try_get("answered_at")?;
                let end: Option<String> = r.try_get("dial_end")?;
                Ok(LegRow {
                    agent_id: r.try_get("agent_id")?,
                    agent_name: r.try_get("agent_name")?,
                    answered: answered.is_some(),
                    rang_out: end.as_deref() == Some("rang_out"),
                })
            })
            .collect()
    }

    /// The calls `q` asks for, newest first.
    pub async fn calls(&self, q: &CallQuery) -> Result<Vec<CallRow>, sqlx::Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.from.is_some() {
            sql += &format!(" AND started_at >= {}", next());
        }
        if q.to.is_some() {
            sql += &format!(" AND started_at < {}", next());
        }
        if q.line.is_some() {
            sql += &format!(" AND line = {}", next());
        }
        if q.outcome.is_some() {
            sql += &format!(" AND outcome = {}", next());
        }
        sql += &format!(" ORDER BY started_at DESC, call_sid LIMIT {}", next());
        let mut query = sqlx::query(&sql);
        if let Some(from) = q.from {
            query = query.bind(db_int(from));
        }
        if let Some(to) = q.to {
            query = query.bind(db_int(to));
        }
        if let Some(line) = &q.line {
            query = query.bind(line.clone());
        }
        if let Some(outcome) = &q.outcome {
            query = query.bind(outcome.clone());
        }
        let rows = query
            .bind(i64::from(q.limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(call_row).collect()
    }

    /// Call `sid`'s row, if the ledger has it.
    pub async fn call(&self, sid: &str) -> Result<Option<CallRow>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM calls WHERE call_sid = $1"))
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(call_row).transpose()
    }

    /// Every event of call `sid`, in order.
    pub async fn events(&self, sid: &str) -> Result<Vec<EventRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, kind, data FROM events WHERE call_sid = $1 ORDER BY at, event_id",
        )
        .bind(sid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                Ok(EventRow {
                    at: from_db(r.try_get("at")?),
                    kind: r.try_get("kind")?,
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}

/// One recording as the archive holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingRow {
    pub id: String,
    pub call_sid: String,
    pub kind: String,
    pub state: String,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub path: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub duration_secs: Option<u64>,
    /// The provider's link (it expires).
    pub provider_url: String,
    pub received_at: Millis,
    pub archived_at: Option<Millis>,
    pub delete_after: Option<Millis>,
    pub deleted_at: Option<Millis>,
    /// Where it is kept: `local` (the archive directory) or a bucket's URL.
    pub store: Option<String>,
    /// The provider's copy, when its callback named it.
    pub provider_sid: Option<String>,
    /// When the provider's copy was deleted (`recordings.delete_from_provider`).
    pub provider_deleted_at: Option<Millis>,
}

/// Where an archived file is, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// `local`, or the bucket's URL.
    pub store: String,
    pub path: String,
    pub content_type: String,
    pub bytes: u64,
    pub sha256: String,
}

const RECORDING_COLUMNS: &str = "id, call_sid, kind, state, attempts, last_error, path, \
    content_type, bytes, sha256, duration_secs, provider_url, received_at, archived_at, \
    delete_after, deleted_at, store, provider_sid, provider_deleted_at";

impl Ledger {
    /// Notes a recording to archive. False when it was already noted (a duplicate callback, or
    /// another replica's): then nobody downloads it twice.
    pub async fn recording_received(
        &self,
        job: &archive::Job,
        now: Millis,
    ) -> Result<bool, sqlx::Error> {
        let copy = job.copy.as_ref();
        let done = sqlx::query(
            "INSERT INTO recordings (id, call_sid, kind, provider_url, duration_secs, state, \
             received_at, updated_at, provider_account, provider_sid) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(job.id())
        .bind(job.call.as_str())
        .bind(job.kind)
        .bind(&job.url)
        .bind(job.duration_secs.map(i64::from))
        .bind(db_int(now))
        .bind(copy.map(|c| c.account.to_string()))
        .bind(copy.map(|c| c.sid.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Recording `id` is stored; retention deletes it at `delete_after`.
    pub async fn recording_archived(
        &self,
        id: &str,
        stored: &Stored,
        attempts: u32,
        delete_after: Option<Millis>,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE recordings SET state = 'archived', path = $2, content_type = $3, bytes = $4, \
             sha256 = $5, attempts = $6, archived_at = $7, delete_after = $8, last_error = NULL, \
             updated_at = $7, store = $9 WHERE id = $1",
        )
        .bind(id)
        .bind(&stored.path)
        .bind(&stored.content_type)
        .bind(db_int(stored.bytes))
        .bind(&stored.sha256)
        .bind(i64::from(attempts))
        .bind(db_int(now))
        .bind(delete_after.map(db_int))
        .bind(&stored.store)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The provider's copy of recording `id` was deleted.
    pub async fn provider_copy_deleted(&self, id: &str, now: Millis) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE recordings SET provider_deleted_at = $2, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(db_int(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Recording `id` could not be downloaded after `attempts`.
    pub async fn recording_failed(
        &self,
        id: &str,
        attempts: u32,
        error: &str,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE recordings SET state = 'failed', attempts = $2, last_error = $3, \
             updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(db_int(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Recording `id`'s file was deleted (retention).
    pub async fn recording_deleted(&self, id: &str, now: Millis) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE recordings SET state = 'deleted', deleted_at = $2, updated_at = $2 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(db_int(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(recording_row).transpose()
    }

    /// Archived recordings whose retention ended by `now`.
    pub async fn expired_recordings(&self, now: Millis) -> Result<Vec<RecordingRow>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE state = 'archived' AND delete_after IS NOT NULL AND delete_after <= $1 \
             ORDER BY delete_after LIMIT 500"
        ))
        .bind(db_int(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_row).collect()
    }

    /// Recordings received in `[from, to)`, oldest first.
    pub async fn recordings(
        &self,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<RecordingRow>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE received_at >= $1 AND received_at < $2 ORDER BY received_at, id"
        ))
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_row).collect()
    }

    /// Recordings of call `sid`.
    pub async fn recordings_of(&self, sid: &str) -> Result<Vec<RecordingRow>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE call_sid = $1 ORDER BY id"
        ))
        .bind(sid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_row).collect()
    }

    /// An event of call `sid` that is not a call fact (`recording.archived`, …), once per kind.
    pub async fn note(
        &self,
        sid: &str,
        kind: &str,
        at: Millis,
        data: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "{INSERT_EVENTS}{}{EVENTS_TAIL}",
            placeholders(1, EVENT_ARITY)
        ))
        .bind(format!("{sid}/{kind}"))
        .bind(sid)
        .bind(db_int(at))
        .bind(kind)
        .bind(data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A nullable number column.
fn optional(r: &AnyRow, name: &str) -> Result<Option<u64>, sqlx::Error> {
    Ok(r.try_get::<Option<i64>, _>(name)?.map(from_db))
}

fn recording_row(r: &AnyRow) -> Result<RecordingRow, sqlx::Error> {
    let opt = |name: &str| optional(r, name);
    Ok(RecordingRow {
        id: r.try_get("id")?,
        call_sid: r.try_get("call_sid")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        attempts: from_db(r.try_get("attempts")?),
        last_error: r.try_get("last_error")?,
        path: r.try_get("path")?,
        content_type: r.try_get("content_type")?,
        bytes: opt("bytes")?,
        sha256: r.try_get("sha256")?,
        duration_secs: opt("duration_secs")?,
        provider_url: r.try_get("provider_url")?,
        received_at: from_db(r.try_get("received_at")?),
        archived_at: opt("archived_at")?,
        delete_after: opt("delete_after")?,
        deleted_at: opt("deleted_at")?,
        store: r.try_get("store")?,
        provider_sid: r.try_get("provider_sid")?,
        provider_deleted_at: opt("provider_deleted_at")?,
    })
}

fn call_row(r: &AnyRow) -> Result<CallRow, sqlx::Error> {
    let opt = |name: &str| optional(r, name);
    Ok(CallRow {
        call_sid: r.try_get("call_sid")?,
        line: r.try_get("line")?,
        caller: r.try_get("caller")?,
        called: r.try_get("called")?,
        started_at: from_db(r.try_get("started_at")?),
        answered_at: opt("answered_at")?,
        answered_by: r.try_get("answered_by")?,
        ended_at: opt("ended_at")?,
        outcome: r.try_get("outcome")?,
        wait_secs: opt("wait_secs")?,
        talk_secs: opt("talk_secs")?,
        detail: r.try_get("detail")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &'static str, at: Millis) -> Entry {
        Entry {
            call_sid: "CA1".into(),
            at,
            kind,
            line: "main".into(),
            caller: "+12025550142".into(),
            called: "+18005550100".into(),
            started_at: at,
            answered_at: None,
            answered_by: None,
            ended_at: None,
            outcome: None,
            wait_secs: None,
            talk_secs: None,
            detail: None,
            data: "{}".into(),
            repeat: String::new(),
        }
    }

    async fn scratch(name: &str) -> Ledger {
        let dir = std::env::temp_dir().join(format!("sb-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Ledger::connect(&Ledger::sqlite_in(&dir).expect("dir"))
            .await
            .expect("ledger")
    }

    #[tokio::test]
    async fn a_dials_end_applies_whichever_reaches_the_database_first() {
        use crate::call::LegFact;
        let leg = |at, fact| {
            Write::Leg(LegEntry {
                call_sid: "CA1".into(),
                at,
                fact,
            })
        };
        let rang = |group, agents: &[&str]| LegFact::Rang {
            round: 1,
            group,
            agents: agents.iter().map(|a| ((*a).into(), (*a).into())).collect(),
        };
        let taken = LegFact::Taken {
            round: 1,
            group: 0,
            agent_id: Some("ada".into()),
            agent: Some("ada".into()),
        };
        let rang_out = LegFact::RangOut { round: 1, group: 1 };
        let call = Write::Call(Box::new(entry("ringing", 1_000)));
        let mut legs = Vec::new();
        // In order; then each end before the legs it ended (another replica's write, sooner).
        let in_order = [
            leg(1_000, rang(1, &["linus"])),
            leg(2_000, rang_out.clone()),
            leg(3_000, rang(0, &["ada", "grace"])),
            leg(4_000, taken.clone()),
        ];
        let reordered = [
            leg(4_000, taken),
            leg(2_000, rang_out),
            leg(3_000, rang(0, &["ada", "grace"])),
            leg(1_000, rang(1, &["linus"])),
        ];
        for (name, writes) in [("in-order", in_order), ("reordered", reordered)] {
            let ledger = scratch(name).await;
            ledger
                .write_all(std::slice::from_ref(&call), 10)
                .await
                .expect("call");
            for w in writes {
                ledger.write_all(&[w], 10).await.expect("leg");
            }
            let mut rows = ledger.legs("main", 0, 10_000).await.expect("legs");
            rows.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
            let seen: Vec<_> = rows
                .iter()
                .map(|r| (r.agent_id.as_str(), r.answered, r.rang_out))
                .collect();
            legs.push(
                seen.iter()
                    .map(|(a, b, c)| (a.to_string(), *b, *c))
                    .collect::<Vec<_>>(),
            );
        }
        let expected = vec![
            ("ada".to_owned(), true, false),
            ("grace".to_owned(), false, false),
            ("linus".to_owned(), false, true),
        ];
        assert_eq!(legs[0], expected);
        assert_eq!(legs[1], expected);
    }

    #[tokio::test]
    async fn a_batch_folds_a_calls_facts_as_writing_them_one_by_one_would() {
        let answered = Entry {
            started_at: 1_000,
            answered_at: Some(5_000),
            answered_by: Some("Ada".into()),
            wait_secs: Some(4),
            ..entry("answered", 5_000)
        };
        let ended = Entry {
            ended_at: Some(65_000),
            outcome: Some("answered"),
            talk_secs: Some(60),
            ..entry("ended", 65_000)
        };
        let writes: Vec<Write> = [entry("ringing", 1_200), answered, ended]
            .into_iter()
            .map(|e| Write::Call(Box::new(e)))
            .collect();
        let one_by_one = scratch("single").await;
        for w in &writes {
            one_by_one
                .write_all(std::slice::from_ref(w), 70_000)
                .await
                .expect("write");
        }
        let batched = scratch("batch").await;
        batched.write_all(&writes, 70_000).await.expect("write");
        // And again: a duplicate batch changes nothing.
        batched.write_all(&writes, 70_000).await.expect("write");
        let q = CallQuery {
            limit: 10,
            ..CallQuery::default()
        };
        let a = one_by_one.calls(&q).await.expect("read");
        let b = batched.calls(&q).await.expect("read");
        assert_eq!(a, b);
        assert_eq!(a.len(), 1);
        let row = &a[0];
        assert_eq!(
            (row.started_at, row.answered_at, row.ended_at),
            (1_000, Some(5_000), Some(65_000))
        );
        assert_eq!((row.wait_secs, row.talk_secs), (Some(4), Some(60)));
        assert_eq!(row.outcome.as_deref(), Some("answered"));
        let kinds: Vec<String> = batched
            .events("CA1")
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["ringing", "answered", "ended"]);
    }

    #[test]
    fn placeholders_number_every_row_in_turn() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
