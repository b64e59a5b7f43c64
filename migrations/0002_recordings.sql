-- The recordings archive: each recording the provider reports, downloaded at once (provider links
-- expire about ten minutes after the call), with where it is kept, its size and SHA-256, and
-- when retention deletes it.

CREATE TABLE recordings (
    -- <call_sid>-<kind>: one recording of each kind per call.
    id            TEXT PRIMARY KEY,
    call_sid      TEXT NOT NULL,
    -- voicemail, conversation
    kind          TEXT NOT NULL,
    provider_url  TEXT NOT NULL,
    duration_secs BIGINT,
    -- pending, archived, failed, deleted
    state         TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    -- Relative to the archive directory.
    path          TEXT,
    content_type  TEXT,
    bytes         BIGINT,
    sha256        TEXT,
    received_at   BIGINT NOT NULL,
    archived_at   BIGINT,
    -- NULL: kept until deleted by hand.
    delete_after  BIGINT,
    deleted_at    BIGINT,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX recordings_call ON recordings (call_sid);
CREATE INDEX recordings_delete_after ON recordings (delete_after);
