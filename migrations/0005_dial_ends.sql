-- How each <Dial> ended (answered, by whom and when; or rang out), kept apart from its legs so
-- that the order of writes does not matter: with several replicas, the end of a <Dial> can reach
-- the database before the legs it rang (written by another replica). Whichever comes second
-- applies the end to the legs.

CREATE TABLE dial_ends (
    call_sid    TEXT NOT NULL,
    round       BIGINT NOT NULL,
    grp         BIGINT NOT NULL,
    -- answered, rang_out
    dial_end    TEXT NOT NULL,
    -- Who answered (a number, unknown agent: NULL).
    agent_id    TEXT,
    answered_at BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (call_sid, round, grp)
);
