-- The ledger's foreign key to its event checked every row, and locked the event
-- row for it: about two-thirds of the cost of a ledger insert, for a property
-- the worker holds by construction (ledger rows are inserted only by the
-- statement that inserts their event, and only for the events it inserted;
-- nothing deletes events). `reconcile` checks the ledger against the levels.
ALTER TABLE inventory_transactions DROP CONSTRAINT IF EXISTS inventory_transactions_event_id_fkey;
