-- Order lines and what was decided for them (contract, sections 2 and 5).

-- One row per order line: the decision made once when the order was confirmed,
-- and what became of the line since.
CREATE TABLE allocations (
    order_id        text        NOT NULL,
    line_id         text        NOT NULL,
    sku             text        NOT NULL,
    location_id     text        NOT NULL,
    quantity        bigint      NOT NULL,
    reservation_id  text,
    -- At confirmation: 'reservation' (an active reservation confirmed),
    -- 'available' (allocated from available stock), 'backordered' (queued), or
    -- 'cancelled' (the order was cancelled before its confirmation arrived).
    decision        text        NOT NULL CHECK (decision IN ('reservation', 'available', 'backordered', 'cancelled')),
    -- Now: 'allocated', 'backordered', 'cancelled' (allocation released or
    -- backorder dropped).
    status          text        NOT NULL CHECK (status IN ('allocated', 'backordered', 'cancelled')),
    -- What the cancellation gave back (the part not yet picked).
    released        bigint      NOT NULL DEFAULT 0,
    confirmed_by    text        NOT NULL,
    allocated_by    text,
    cancelled_by    text,
    confirmed_at    timestamptz NOT NULL DEFAULT now(),
    allocated_at    timestamptz,
    cancelled_at    timestamptz,
    PRIMARY KEY (order_id, line_id)
);

CREATE INDEX allocations_sku_location ON allocations (sku, location_id);

-- One row per backordered line, in the order it was queued.
CREATE TABLE backorders (
    order_id     text        NOT NULL,
    line_id      text        NOT NULL,
    sku          text        NOT NULL,
    location_id  text        NOT NULL,
    quantity     bigint      NOT NULL,
    -- The place in the SKU and location's queue.
    queue_seq    bigint      NOT NULL,
    status       text        NOT NULL CHECK (status IN ('waiting', 'filled', 'dropped')),
    -- NULL until known: a fill can reach PostgreSQL before its confirmation.
    queued_by    text,
    filled_by    text,
    dropped_by   text,
    queued_at    timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz,
    PRIMARY KEY (order_id, line_id)
);

CREATE INDEX backorders_waiting ON backorders (sku, location_id, queue_seq) WHERE status = 'waiting';

-- Cancellations, kept so that a confirmation arriving after its cancellation
-- (topics and partitions are not ordered) is not allocated. line_id '*': every line.
CREATE TABLE order_cancellations (
    order_id    text        NOT NULL,
    line_id     text        NOT NULL,
    event_id    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, line_id)
);

-- Lines found allocated or waiting while a cancellation covers them: a
-- cancellation and a confirmation of one order decided side by side on two
-- workers, each before the other committed. The worker releases them in a
-- later batch (its Redis script call has a mark of its own) and deletes the row.
CREATE TABLE pending_cancellations (
    order_id        text        NOT NULL,
    line_id         text        NOT NULL,
    sku             text        NOT NULL,
    location_id     text        NOT NULL,
    quantity        bigint      NOT NULL,
    status          text        NOT NULL,
    cancel_event_id text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, line_id)
);
