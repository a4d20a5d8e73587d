-- The order outbox rows were written in, which is the order they are published
-- in (contract, section 5: an ALLOCATION_CANCELLED never goes out before the
-- ALLOCATION it cancels; both are keyed by location, so the WMS reads them in
-- publishing order). created_at cannot tell: every row of a batch has the same.

CREATE SEQUENCE outbox_publish_order_seq AS bigint;

-- Without a default first: adding the column does not rewrite the table.
ALTER TABLE outbox ADD COLUMN publish_order bigint;
ALTER SEQUENCE outbox_publish_order_seq OWNED BY outbox.publish_order;

-- Rows still waiting get their place: by batch, and within a batch an
-- allocation before a cancellation, as the worker built them. Rows already
-- published keep NULL: nothing reads them in order again.
UPDATE outbox o SET publish_order = w.position
FROM (SELECT message_id,
             row_number() OVER (ORDER BY created_at, message_id LIKE 'allocation-cancelled%', message_id) AS position
      FROM outbox WHERE published_at IS NULL) w
WHERE o.message_id = w.message_id;

SELECT setval('outbox_publish_order_seq', coalesce(max(publish_order), 0) + 1, false) FROM outbox;

-- From now on every row gets the next number as it is inserted; the worker
-- inserts a batch's rows in the order it built them.
ALTER TABLE outbox ALTER COLUMN publish_order SET DEFAULT nextval('outbox_publish_order_seq');

-- Pending rows are read oldest first by this order.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (publish_order) WHERE published_at IS NULL;
