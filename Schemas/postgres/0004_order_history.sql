-- What a later event needs to decide an order's lines, held by PostgreSQL for
-- when Redis no longer holds it (contract, section 4): Redis keeps order lines
-- and pick tallies only while their events are in flight, plus a short grace.

-- The order a pick was for, on its ledger rows: a cancellation counts the
-- order's picks at a SKU and location.
UPDATE inventory_transactions t SET order_id = e.payload::json ->> 'orderId'
FROM inventory_events e
WHERE e.event_id = t.event_id AND t.event_type = 'PICK_COMPLETE' AND t.order_id IS NULL;

CREATE INDEX inventory_transactions_order ON inventory_transactions (order_id, sku, location_id) WHERE order_id IS NOT NULL;

-- The picks a cancelled line accounted for: they are not counted again by
-- another line of the order.
ALTER TABLE allocations ADD COLUMN picks_used bigint NOT NULL DEFAULT 0;

UPDATE allocations a SET picks_used = a.quantity - a.released
WHERE a.status = 'cancelled' AND a.decision <> 'cancelled'
  AND NOT EXISTS (SELECT 1 FROM backorders b WHERE b.order_id = a.order_id AND b.line_id = a.line_id AND b.status = 'dropped');

-- Each order line as first confirmed, claimed before any worker decides it in
-- Redis: a line is decided once, and a confirmation that gives it another SKU,
-- location or quantity is a bad event, whichever worker or batch sees the two.
CREATE TABLE order_line_claims (
    order_id    text        NOT NULL,
    line_id     text        NOT NULL,
    sku         text        NOT NULL,
    location_id text        NOT NULL,
    quantity    bigint      NOT NULL,
    event_id    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, line_id)
);

INSERT INTO order_line_claims (order_id, line_id, sku, location_id, quantity, event_id)
SELECT order_id, line_id, sku, location_id, quantity, confirmed_by FROM allocations;
