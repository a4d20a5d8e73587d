-- Where the committed batches' Redis writes stand in each Redis primary's
-- replication stream (contract, section 4: a failover that loses acknowledged
-- writes is Redis data loss). Redis replication is asynchronous: a replica
-- promoted after its primary died may lack the last writes of batches that
-- PostgreSQL committed, while the state sentinel, written long before, is
-- there. Every batch's transaction records, for each primary, the replication
-- id and the offset its writes reached; one row per worker process (`holder`),
-- so that workers never wait on each other's rows. A worker that meets a
-- primary it has not checked (at its start, after a failover) asks whether the
-- primaries hold every row (their own id up to their offset, or the id they
-- took over up to where they took over) and repairs Redis from PostgreSQL if
-- one is not held. A repair empties the table: what it rebuilt is PostgreSQL's.
CREATE TABLE redis_replication (
    replid text NOT NULL,
    holder text NOT NULL,
    repl_offset bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replid, holder)
);
