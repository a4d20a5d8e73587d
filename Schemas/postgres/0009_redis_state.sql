-- Which Redis state the workers build on (contract, section 4: Redis losing its
-- data is detected before the next batch is applied). One row: a token that
-- Redis holds too, in the key inventory:state:{DEPLOYMENT} (the deployment: this
-- database's own id, so that databases sharing a Redis, as tests do, each have
-- their sentinel). A Redis without that key
-- (a restart without persistence, a FLUSHALL, a failover to an empty replica)
-- is not built on: the worker repairs it from PostgreSQL first, under a new
-- token. Every batch's transaction reads the row FOR SHARE and checks that its
-- scripts ran under the token it finds, so a batch prepared on the Redis of
-- before a repair is never committed after the repair's snapshot.
-- Empty until a worker first starts: that worker adopts the Redis it finds (as
-- the workers before this migration did) and writes the first token.
CREATE TABLE redis_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    deployment text NOT NULL,
    token text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
