//! Lines as operators see and steer them: each line's state and why, and the manual overrides
//! set through the admin API. An override is kept in memory and saved to a file (one replica), or
//! in one Redis hash shared by every replica; either way it survives a restart. The call service
//! reads the overrides for every new call and menu choice; the core decides what they mean
//! ([`crate::call::hours`]). [`cli`] is `switchboard lines`, the admin API from a terminal.

pub mod cli;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::Serialize;

use crate::call::hours::{self, Override, Why};
use crate::call::policy::Overrides;
use crate::call::redis_store::bounded;
use crate::call::{Policy, StoreError};
use crate::domain::LineId;
use crate::sink::{Record, Sinks};
use crate::time::{Clock, Millis};

/// Why an override could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("line overrides file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("line overrides: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where the overrides live.
pub enum LineOverrides {
    /// One replica: in memory, saved to `file` (when set) on every change, read back at start.
    Memory {
        map: Mutex<Overrides>,
        file: Option<PathBuf>,
    },
    /// Several replicas: a Redis hash, line id → JSON.
    Redis {
        conn: ConnectionManager,
        key: String,
    },
}

impl LineOverrides {
    /// In memory, loaded from `file` when it exists.
    pub fn memory(file: Option<PathBuf>) -> Result<LineOverrides, OverrideError> {
        let map = match &file {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice::<HashMap<LineId, Override>>(&bytes)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
                Err(source) => {
                    return Err(OverrideError::File {
                        path: path.display().to_string(),
                        source,
                    })
                }
            },
            None => HashMap::new(),
        };
        Ok(LineOverrides::Memory {
            map: Mutex::new(Arc::new(map)),
            file,
        })
    }

    pub fn redis(conn: ConnectionManager, key: String) -> LineOverrides {
        LineOverrides::Redis { conn, key }
    }

    /// Every override set (expired ones included: the core ignores them).
    pub async fn all(&self) -> Result<Overrides, StoreError> {
        match self {
            LineOverrides::Memory { map, .. } => {
                Ok(map.lock().unwrap_or_else(|p| p.into_inner()).clone())
            }
            LineOverrides::Redis { conn, key } => {
                let mut conn = conn.clone();
                let raw: HashMap<String, String> =
                    bounded(async { Ok(conn.hgetall(key).await?) }).await?;
                let mut map = HashMap::with_capacity(raw.len());
                for (line, json) in raw {
                    match serde_json::from_str(&json) {
                        Ok(o) => {
                            map.insert(LineId::new(&line), o);
                        }
                        Err(e) => {
                            tracing::error!(line, error = %e, "unreadable line override ignored")
                        }
                    }
                }
                Ok(Arc::new(map))
            }
        }
    }

    /// Sets (`Some`) or lifts (`None`) `line`'s override.
    pub async fn set(&self, line: &LineId, o: Option<&Override>) -> Result<(), OverrideError> {
        match self {
            LineOverrides::Memory { map, file } => {
                let snapshot = {
                    let mut guard = map.lock().unwrap_or_else(|p| p.into_inner());
                    let mut next = HashMap::clone(&guard);
                    match o {
                        Some(o) => next.insert(line.clone(), o.clone()),
                        None => next.remove(line),
                    };
                    *guard = Arc::new(next);
                    guard.clone()
                };
                if let Some(path) = file {
                    save(path.clone(), serde_json::to_vec_pretty(&*snapshot)?).await?;
                }
                Ok(())
            }
            LineOverrides::Redis { conn, key } => {
                let mut conn = conn.clone();
                let field = line.as_str();
                match o {
                    Some(o) => {
                        let json = serde_json::to_string(o)?;
                        bounded(async { Ok(conn.hset::<_, _, _, ()>(key, field, json).await?) })
                            .await?
                    }
                    None => bounded(async { Ok(conn.hdel::<_, _, ()>(key, field).await?) }).await?,
                }
                Ok(())
            }
        }
    }
}

/// Writes `bytes` to `path` whole: a temporary file beside it, then a rename.
async fn save(path: PathBuf, bytes: Vec<u8>) -> Result<(), OverrideError> {
    let shown = path.display().to_string();
    let written = tokio::task::spawn_blocking(move || {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    written.map_err(|source| OverrideError::File {
        path: shown,
        source,
    })
}

/// One line as `GET /admin/lines` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineView {
    pub id: String,
    pub name: String,
    pub open: bool,
    /// `always_open`, `hours`, `outside_hours`, `closed_day` or `manual`.
    pub why: Why,
    /// When the state changes next (RFC 3339, UTC), if it is known.
    pub until: Option<String>,
    /// The operator's override in force, if any.
    #[serde(rename = "override")]
    pub manual: Option<OverrideView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverrideView {
    pub open: bool,
    pub until: Option<String>,
    pub by: String,
    pub at: String,
}

/// An instant as RFC 3339 in UTC (`2026-11-23T17:00:00Z`).
pub fn rfc3339(at: Millis) -> String {
    i64::try_from(at)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| at.to_string(), |t| t.to_string())
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no line `{0}`")]
    UnknownLine(String),
    #[error("`until` is not in the future")]
    Past,
    #[error(transparent)]
    Store(#[from] OverrideError),
}

/// Reads and changes the lines' state for the admin API.
pub struct LineControl {
    policy: Policy,
    /// Names by id (the implicit line's is "Main line").
    names: HashMap<LineId, String>,
    overrides: Arc<LineOverrides>,
    sinks: Sinks,
    clock: Arc<dyn Clock>,
}

impl LineControl {
    pub fn new(
        policy: Policy,
        names: HashMap<LineId, String>,
        overrides: Arc<LineOverrides>,
        sinks: Sinks,
        clock: Arc<dyn Clock>,
    ) -> LineControl {
        LineControl {
            policy,
            names,
            overrides,
            sinks,
            clock,
        }
    }

    fn name(&self, id: &LineId) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.as_str().to_owned())
    }

    /// Every line, in configuration order.
    pub async fn list(&self) -> Result<Vec<LineView>, StoreError> {
        let now = self.clock.now_ms();
        let manual = self.overrides.all().await?;
        Ok(self
            .policy
            .line_ids()
            .iter()
            .map(|id| self.view(id, &manual, now))
            .collect())
    }

    fn view(&self, id: &LineId, manual: &Overrides, now: Millis) -> LineView {
        let status = self.policy.status(id, manual, now);
        LineView {
            id: id.as_str().to_owned(),
            name: self.name(id),
            open: status.open,
            why: status.why,
            until: self.policy.until(id, manual, now).map(rfc3339),
            manual: manual
                .get(id)
                .filter(|o| o.holds(now))
                .map(|o| OverrideView {
                    open: o.open,
                    until: o.until.map(rfc3339),
                    by: o.by.clone(),
                    at: rfc3339(o.at),
                }),
        }
    }

    fn known(&self, id: &str) -> Result<LineId, ControlError> {
        self.policy
            .line_ids()
            .into_iter()
            .find(|l| l.as_str() == id)
            .ok_or_else(|| ControlError::UnknownLine(id.to_owned()))
    }

    /// Closes line `id` now, until `until` or the schedule's next opening.
    pub async fn close(
        &self,
        id: &str,
        until: Option<Millis>,
        by: &str,
    ) -> Result<LineView, ControlError> {
        self.change(id, until, by, false).await
    }

    /// Opens line `id` (lifts a closure; holds a scheduled-closed line open).
    pub async fn open(
        &self,
        id: &str,
        until: Option<Millis>,
        by: &str,
    ) -> Result<LineView, ControlError> {
        self.change(id, until, by, true).await
    }

    async fn change(
        &self,
        id: &str,
        until: Option<Millis>,
        by: &str,
        open: bool,
    ) -> Result<LineView, ControlError> {
        let line = self.known(id)?;
        let now = self.clock.now_ms();
        if until.is_some_and(|u| u <= now) {
            return Err(ControlError::Past);
        }
        let schedule = self.policy.schedule_of(&line);
        let o = match open {
            true => hours::open(schedule, until, by, now),
            false => Some(hours::close(schedule, until, by, now)),
        };
        self.overrides.set(&line, o.as_ref()).await?;
        // The line's view from the override just written; no need to read the store back.
        let manual: Overrides = Arc::new(o.iter().map(|o| (line.clone(), o.clone())).collect());
        let view = self.view(&line, &manual, now);
        self.sinks.accept(Record::Line {
            at: now,
            line: line.clone(),
            name: view.name.clone(),
            open,
            until: o.as_ref().and_then(|o| o.until),
            by: by.to_owned(),
        });
        Ok(view)
    }
}
