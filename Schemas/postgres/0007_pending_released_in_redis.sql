-- A cancellation can be resolved on one worker with a line whose confirmation
-- that worker had in hand, then committed by another worker that does not hold
-- the confirmation yet (contract, sections 4 and 5: each line released once in
-- both stores; no ALLOCATION_CANCELLED before its ALLOCATION). Redis already
-- gave the line back; PostgreSQL waits for the confirmation. Such a line waits
-- here with what Redis released, and a later batch records it, without touching
-- Redis again, once `allocations` holds it. NULL: Redis has not released it yet.
ALTER TABLE pending_cancellations ADD COLUMN released bigint, ADD COLUMN picks_used bigint;
