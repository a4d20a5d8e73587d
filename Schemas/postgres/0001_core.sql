-- The authoritative quantities, the events applied, and the ledger that can
-- rebuild the quantities from nothing (contract, section 3).

CREATE TABLE inventory_levels (
    sku            text        NOT NULL,
    location_id    text        NOT NULL,
    on_hand        bigint      NOT NULL DEFAULT 0,
    allocated      bigint      NOT NULL DEFAULT 0,
    reserved       bigint      NOT NULL DEFAULT 0,
    damaged        bigint      NOT NULL DEFAULT 0,
    picked         bigint      NOT NULL DEFAULT 0,
    in_transit_in  bigint      NOT NULL DEFAULT 0,
    in_transit_out bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location_id)
);

-- Every eventId ever applied, forever: replays older than Redis's
-- deduplication window are still recognised here.
CREATE TABLE inventory_events (
    event_id         text        PRIMARY KEY,
    event_type       text        NOT NULL,
    location_id      text,
    occurred_at      timestamptz NOT NULL,
    -- The payload's canonical JSON (keys sorted, no insignificant whitespace).
    -- text, not jsonb: jsonb refuses the escape \u0000, which a valid event may
    -- carry in a field the worker ignores. Cast to jsonb to query it.
    payload          text        NOT NULL,
    -- SHA-256 of the payload's canonical JSON: the same eventId with another
    -- payload is a conflict.
    payload_digest   bytea       NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    applied_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX inventory_events_applied_at ON inventory_events (applied_at);

-- One row per event line and location, with the delta of every bucket; and one
-- per allocation or release an event caused (an order line confirmed, a
-- backordered line filled by a receipt, a cancellation).
CREATE TABLE inventory_transactions (
    event_id         text        NOT NULL REFERENCES inventory_events (event_id),
    -- The entry's place among the event's entries: event lines first, then
    -- what they caused, in the order the worker applied them.
    entry_no         integer     NOT NULL,
    -- The event line it comes from (its index in items or lines), if any.
    line_no          integer,
    order_id         text,
    line_id          text,
    sku              text        NOT NULL,
    location_id      text        NOT NULL,
    event_type       text        NOT NULL,
    d_on_hand        bigint      NOT NULL DEFAULT 0,
    d_allocated      bigint      NOT NULL DEFAULT 0,
    d_reserved       bigint      NOT NULL DEFAULT 0,
    d_damaged        bigint      NOT NULL DEFAULT 0,
    d_picked         bigint      NOT NULL DEFAULT 0,
    d_in_transit_in  bigint      NOT NULL DEFAULT 0,
    d_in_transit_out bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, entry_no)
);

CREATE INDEX inventory_transactions_sku_location ON inventory_transactions (sku, location_id);
