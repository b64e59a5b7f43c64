-- Who each <Dial> rang, who took the call, and which <Dial>s rang out: one row per call, round,
-- wave and agent. A leg whose <Dial> rang out is that agent's miss; one cut short because someone
-- else took the call is not.

CREATE TABLE legs (
    call_sid    TEXT NOT NULL,
    round       BIGINT NOT NULL,
    grp         BIGINT NOT NULL,
    agent_id    TEXT NOT NULL,
    agent_name  TEXT NOT NULL,
    rung_at     BIGINT NOT NULL,
    answered_at BIGINT,
    -- answered, rang_out; NULL while ringing or when the caller hung up first.
    dial_end    TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (call_sid, round, grp, agent_id)
);
CREATE INDEX legs_agent ON legs (agent_id, rung_at);
