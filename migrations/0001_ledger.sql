-- The call ledger: one row per inbound call, and its events (at most one of each kind per call).
-- Portable between SQLite and PostgreSQL: times are BIGINT epoch milliseconds (UTC), durations
-- whole seconds, enumerations TEXT. Writes are upserts keyed by the provider's ids, so a
-- duplicated write changes nothing.

CREATE TABLE calls (
    call_sid    TEXT PRIMARY KEY,
    line        TEXT NOT NULL,
    -- As privacy.ledger_numbers says: the number, masked, or a keyed hash.
    caller      TEXT NOT NULL,
    called      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    answered_at BIGINT,
    answered_by TEXT,
    ended_at    BIGINT,
    -- answered, voicemail, missed, abandoned, closed, turned_away, refused; NULL while live or
    -- while a late voicemail may still settle it.
    outcome     TEXT,
    -- Seconds the caller waited: until answered, or until they hung up unanswered.
    wait_secs   BIGINT,
    talk_secs   BIGINT,
    -- Why: the voicemail reason, the after-hours action, the turn-away reason.
    detail      TEXT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX calls_started ON calls (started_at);
CREATE INDEX calls_line_started ON calls (line, started_at);

CREATE TABLE events (
    -- <call_sid>/<kind>: a fact of each kind is decided once per call.
    event_id TEXT PRIMARY KEY,
    call_sid TEXT NOT NULL,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    -- JSON, with numbers as the ledger keeps them.
    data     TEXT NOT NULL
);
CREATE INDEX events_call_at ON events (call_sid, at);
