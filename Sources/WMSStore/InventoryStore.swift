import Postgres
import WMSDomain

/// The worker's reads and writes in PostgreSQL: set-based, a handful of statements
/// per batch whatever its size, every value a bound parameter.
///
/// Blocking, one owner at a time, like the connection it wraps.
public final class InventoryStore {
    public let db: PostgresConnection

    public init(db: PostgresConnection) {
        self.db = db
    }

    /// A connection for the worker's statements, every one a lookup or a write by
    /// key, many per second:
    /// - no sequential scan where an index serves: while tables grow fast (a
    ///   backlog or a replay into a young database) the planner's statistics lag
    ///   behind, and it chose to scan the whole ledger, allocations and claims
    ///   for a batch's orders (a 1,000,000-event drain read 97 million ledger
    ///   rows that way, in 192 scans);
    /// - no parallel query, which only adds the start of its workers (a batch's
    ///   order picks took 14 ms with two workers, 2 ms without);
    /// - no JIT compilation, which a statement's cost (counting a sequential scan
    ///   it cannot avoid as disabled) would start: 110 ms of compiling for the
    ///   pending cancellations, an empty table, read in 0.02 ms without it.
    public static func connect(url: String) throws(PostgresError) -> PostgresConnection {
        try PostgresConnection(url: url, settings: ["enable_seqscan": "off", "max_parallel_workers_per_gather": "0", "jit": "off"])
    }

    /// The digest of each of these eventIds that PostgreSQL already holds.
    public func existingDigests(of eventIds: [String]) throws -> [String: String] {
        guard !eventIds.isEmpty else { return [:] }
        let rows = try db.query("""
            SELECT event_id, encode(payload_digest, 'hex') AS digest
            FROM inventory_events WHERE event_id = ANY(\(eventIds)::text[])
            """).rows
        var digests: [String: String] = [:]
        for row in rows {
            digests[try row["event_id"].string()] = try row["digest"].string()
        }
        return digests
    }

    /// Writes the batch in one transaction. Everything is keyed (eventId, messageId,
    /// source offset), and what is already there is skipped: writing the same batch
    /// twice changes nothing, and quantities move only for events new to the table.
    /// `redisState`: the token of the Redis state the batch's scripts ran on; the
    /// transaction rolls back (`RedisStateChanged`) if another stands.
    /// `replication`: how far its Redis writes reached on each primary.
    /// `beforeCommit` runs with every row written, before COMMIT (a test's crash point).
    public func write(_ batch: BatchRecords, redisState: String, replication: RedisReplicationPositions? = nil,
                      beforeCommit: () -> Void = {}) throws {
        guard !batch.isEmpty else { return }
        try db.withTransaction { db in
            try checkRedisState(redisState, db)
            if let replication { try recordReplication(replication, db) }
            // Only events this transaction inserted write their records: another
            // worker that wrote the same event first wrote the same records.
            let batch = batch.keeping(insertedEvents: try insertEventsLedgerAndLevels(batch, db))
            try insertAdjustments(batch.adjustments, db)
            try insertAlerts(batch.alerts, db)
            try insertOutbox(batch.outbox, db)
            try insertDeadLetters(batch.deadLetters, db)
            try writeOrderLines(batch, db)
            try writeLateCancellations(batch.lateCancellations, db)
            try findLinesCancelledMeanwhile(batch, db)
            try holdReleasedBeforeAllocation(batch.releasedBeforeAllocation, db)
            beforeCommit()
        }
    }

    /// Lines waiting to be released by a later batch, oldest first, with the
    /// line's status as PostgreSQL holds it now. A line Redis gave back already
    /// waits until PostgreSQL holds it as Redis did: its confirmation, and the
    /// fill that allocated it if Redis released it allocated (the ALLOCATION of a
    /// fill in flight on another worker goes first).
    public func pendingCancellations(limit: Int) throws -> [PendingCancellation] {
        try db.query("""
            SELECT p.order_id, p.line_id, p.sku, p.location_id, p.quantity, coalesce(a.status, p.status) AS status,
                   p.cancel_event_id, p.released, p.picks_used
            FROM pending_cancellations p LEFT JOIN allocations a ON a.order_id = p.order_id AND a.line_id = p.line_id
            WHERE p.released IS NULL OR (a.status IS NOT NULL AND (p.status <> 'allocated' OR a.status <> 'backordered'))
            ORDER BY p.created_at, p.order_id, p.line_id LIMIT \(limit)
            """).rows.map { row in
            PendingCancellation(
                line: StoredOrderLine(lineId: try row["line_id"].string(), sku: try row["sku"].string(),
                                      locationId: try row["location_id"].string(), quantity: try row["quantity"].int(),
                                      status: try row["status"].string()),
                orderId: try row["order_id"].string(), cancelEventId: try row["cancel_event_id"].string(),
                releasedInRedis: row["released"].isNull ? nil
                    : LineRelease(released: try row["released"].int(), picksUsed: try row["picks_used"].int()))
        }
    }

    /// Late cancellations whose Redis keys are still owed their expiry (a run
    /// that died or failed between their commit and their release), oldest first.
    public func owedLateReleases(limit: Int) throws -> [PendingCancellation] {
        try db.query("""
            SELECT order_id, line_id, sku, location_id, cancel_event_id FROM late_cancellation_releases
            ORDER BY created_at, order_id, line_id LIMIT \(limit)
            """).rows.map { row in
            PendingCancellation(
                line: StoredOrderLine(lineId: try row["line_id"].string(), sku: try row["sku"].string(),
                                      locationId: try row["location_id"].string(), quantity: 0, status: "cancelled"),
                orderId: try row["order_id"].string(), cancelEventId: try row["cancel_event_id"].string())
        }
    }

    /// Once their keys were released.
    public func forgetLateReleases(_ lines: [PendingCancellation]) throws {
        guard !lines.isEmpty else { return }
        try db.query("""
            DELETE FROM late_cancellation_releases
            WHERE (order_id, line_id) IN (SELECT * FROM unnest(\(lines.map(\.orderId))::text[], \(lines.map(\.line.lineId))::text[]))
            """)
    }

    /// Moves these pending cancellations behind every other, in a statement of its own.
    public func postponeCancellations(_ pending: [PendingCancellation]) throws {
        guard !pending.isEmpty else { return }
        try db.query("""
            UPDATE pending_cancellations SET created_at = clock_timestamp()
            WHERE (order_id, line_id) IN (SELECT * FROM unnest(\(pending.map(\.orderId))::text[], \(pending.map(\.line.lineId))::text[]))
            """)
    }

    /// The lines of these orders, by order.
    public func orderLines(of orderIds: [String]) throws -> [String: [StoredOrderLine]] {
        guard !orderIds.isEmpty else { return [:] }
        var lines: [String: [StoredOrderLine]] = [:]
        for row in try db.query("""
            SELECT order_id, line_id, sku, location_id, quantity, status FROM allocations
            WHERE order_id = ANY(\(orderIds)::text[]) ORDER BY order_id, line_id
            """).rows {
            lines[try row["order_id"].string(), default: []].append(StoredOrderLine(
                lineId: try row["line_id"].string(), sku: try row["sku"].string(), locationId: try row["location_id"].string(),
                quantity: try row["quantity"].int(), status: try row["status"].string()))
        }
        return lines
    }

    /// Claims each order line for the first content given (in the order given),
    /// in a statement of its own, before any worker decides the line in Redis.
    /// Returns the events that gave a line another SKU, location or quantity than
    /// the one standing.
    public func claimOrderLines(_ lines: [(eventId: String, orderId: String, line: OrderLine)]) throws -> Set<String> {
        guard !lines.isEmpty else { return [] }
        try db.query("""
            INSERT INTO order_line_claims (order_id, line_id, sku, location_id, quantity, event_id)
            SELECT DISTINCT ON (order_id, line_id) order_id, line_id, sku, location_id, quantity, event_id
            FROM unnest(\(lines.map(\.orderId))::text[], \(lines.map(\.line.lineId))::text[], \(lines.map(\.line.sku))::text[],
                        \(lines.map(\.line.locationId))::text[], \(lines.map(\.line.quantity))::bigint[], \(lines.map(\.eventId))::text[])
                 WITH ORDINALITY AS c(order_id, line_id, sku, location_id, quantity, event_id, n)
            ORDER BY order_id, line_id, n
            ON CONFLICT DO NOTHING
            """)
        var standing: [String: [String: StoredOrderLine]] = [:]
        for row in try db.query("""
            SELECT order_id, line_id, sku, location_id, quantity FROM order_line_claims
            WHERE order_id = ANY(\(Array(Set(lines.map(\.orderId))))::text[])
            """).rows {
            let line = StoredOrderLine(lineId: try row["line_id"].string(), sku: try row["sku"].string(),
                                       locationId: try row["location_id"].string(), quantity: try row["quantity"].int(), status: "claimed")
            standing[try row["order_id"].string(), default: [:]][line.lineId] = line
        }
        return Set(lines.filter { standing[$0.orderId]?[$0.line.lineId]?.matches($0.line) != true }.map(\.eventId))
    }

    /// Where an order's picks of a SKU at a location are kept.
    public struct PickPlace: Hashable, Sendable {
        public var orderId: String
        public var sku: String
        public var locationId: String

        public init(orderId: String, sku: String, locationId: String) {
            self.orderId = orderId
            self.sku = sku
            self.locationId = locationId
        }
    }

    /// The picks PostgreSQL holds of these orders, by place: what each pick event
    /// took, and what each cancelled line accounted for.
    public func pickHistories(of orderIds: [String]) throws -> [PickPlace: PickHistory] {
        guard !orderIds.isEmpty else { return [:] }
        var histories: [PickPlace: PickHistory] = [:]
        for row in try db.query("""
            SELECT order_id, sku, location_id, true AS is_pick, event_id AS id, sum(d_picked)::bigint AS quantity
            FROM inventory_transactions
            WHERE order_id = ANY(\(orderIds)::text[]) AND event_type = \(EventType.pickComplete.rawValue)
            GROUP BY order_id, sku, location_id, event_id
            UNION ALL
            SELECT order_id, sku, location_id, false, line_id, picks_used FROM allocations
            WHERE order_id = ANY(\(orderIds)::text[]) AND picks_used > 0
            """).rows {
            let place = PickPlace(orderId: try row["order_id"].string(), sku: try row["sku"].string(), locationId: try row["location_id"].string())
            let (id, quantity) = (try row["id"].string(), try row["quantity"].int())
            if try row["is_pick"].bool() {
                histories[place, default: PickHistory()].byEvent[id] = quantity
            } else {
                histories[place, default: PickHistory()].usedByLine[id] = quantity
            }
        }
        return histories
    }

    /// The cancelled lines of these orders (`*`: all of them), by order.
    public func cancellations(of orderIds: [String]) throws -> [String: Set<String>] {
        guard !orderIds.isEmpty else { return [:] }
        var cancelled: [String: Set<String>] = [:]
        for row in try db.query("SELECT order_id, line_id FROM order_cancellations WHERE order_id = ANY(\(orderIds)::text[])").rows {
            cancelled[try row["order_id"].string(), default: []].insert(try row["line_id"].string())
        }
        return cancelled
    }

    /// Outbox rows not yet acknowledged by the broker, caused by these events or
    /// with these messageIds, and the `oldest` rows whatever caused them, in the
    /// order they were written.
    public func pendingOutbox(eventIds: [String], messageIds: [String], oldest: Int) throws -> [OutboxRecord] {
        try outboxRecords(db.query("""
            SELECT message_id, topic, message_key, payload, headers::text AS headers, event_id
            FROM outbox
            WHERE published_at IS NULL AND (event_id = ANY(\(eventIds)::text[]) OR message_id = ANY(\(messageIds)::text[])
                  OR message_id IN (SELECT message_id FROM outbox WHERE published_at IS NULL ORDER BY publish_order LIMIT \(oldest)))
            ORDER BY publish_order
            """))
    }

    /// Every outbox row not yet acknowledged, oldest first: what a crash may have
    /// left behind.
    public func allPendingOutbox(limit: Int) throws -> [OutboxRecord] {
        try outboxRecords(db.query("""
            SELECT message_id, topic, message_key, payload, headers::text AS headers, event_id
            FROM outbox WHERE published_at IS NULL ORDER BY publish_order LIMIT \(limit)
            """))
    }

    /// Outbox rows not yet acknowledged by the broker (a partial index covers them).
    public func pendingOutboxCount() throws -> Int {
        Int(try db.query("SELECT count(*) AS pending FROM outbox WHERE published_at IS NULL").first!["pending"].int())
    }

    public func markPublished(_ messageIds: [String]) throws {
        guard !messageIds.isEmpty else { return }
        try db.query("""
            UPDATE outbox SET published_at = now()
            WHERE message_id = ANY(\(messageIds)::text[]) AND published_at IS NULL
            """)
    }

    // MARK: Statements of a batch

    /// Events, their ledger rows and the levels they move, in one statement: only the
    /// events this statement inserted contribute ledger rows and level changes, so a
    /// concurrent worker writing the same event cannot double it.
    private func insertEventsLedgerAndLevels(_ batch: BatchRecords, _ db: PostgresConnection) throws -> Set<String> {
        guard !batch.events.isEmpty else { return [] }
        let events = batch.events
        let ledger = batch.ledger
        func deltas(_ bucket: Bucket) -> [Int64] { ledger.map { $0.deltas[bucket] } }
        return Set(try db.query("""
            WITH new_events AS (
                INSERT INTO inventory_events (event_id, event_type, location_id, occurred_at, payload, payload_digest,
                                              source_topic, source_partition, source_offset)
                SELECT e.event_id, e.event_type, e.location_id, to_timestamp(e.occurred_ms / 1000.0), e.payload,
                       decode(e.digest, 'hex'), e.topic, e.part, e.off
                FROM unnest(\(events.map(\.eventId))::text[], \(events.map(\.eventType))::text[],
                            \(events.map(\.locationId))::text[], \(events.map(\.occurredAtMs))::bigint[],
                            \(events.map(\.canonicalJSON))::text[], \(events.map(\.digest))::text[],
                            \(events.map(\.sourceTopic))::text[], \(events.map(\.sourcePartition))::int[],
                            \(events.map(\.sourceOffset))::bigint[])
                     AS e(event_id, event_type, location_id, occurred_ms, payload, digest, topic, part, off)
                -- One lock order for every worker, as for the levels below.
                ORDER BY e.event_id
                ON CONFLICT (event_id) DO NOTHING
                RETURNING event_id
            ), lines AS (
                SELECT * FROM unnest(\(ledger.map(\.eventId))::text[], \(ledger.map(\.entryNo))::int[],
                                     \(ledger.map(\.lineNo))::int[], \(ledger.map(\.orderId))::text[], \(ledger.map(\.lineId))::text[],
                                     \(ledger.map(\.sku))::text[], \(ledger.map(\.locationId))::text[],
                                     \(ledger.map(\.eventType))::text[], \(ledger.map(\.touchesLevels))::boolean[],
                                     \(deltas(.onHand))::bigint[], \(deltas(.allocated))::bigint[], \(deltas(.reserved))::bigint[],
                                     \(deltas(.damaged))::bigint[], \(deltas(.picked))::bigint[],
                                     \(deltas(.inTransitIn))::bigint[], \(deltas(.inTransitOut))::bigint[])
                     AS l(event_id, entry_no, line_no, order_id, line_id, sku, location_id, event_type, touches_levels,
                          d_on_hand, d_allocated, d_reserved, d_damaged, d_picked, d_in_transit_in, d_in_transit_out)
                WHERE l.event_id IN (SELECT event_id FROM new_events)
            ), ledger AS (
                INSERT INTO inventory_transactions (event_id, entry_no, line_no, order_id, line_id, sku, location_id, event_type,
                                                    d_on_hand, d_allocated, d_reserved, d_damaged, d_picked, d_in_transit_in,
                                                    d_in_transit_out)
                SELECT event_id, entry_no, line_no, order_id, line_id, sku, location_id, event_type, d_on_hand, d_allocated,
                       d_reserved, d_damaged, d_picked, d_in_transit_in, d_in_transit_out
                FROM lines
            ), levels AS (
            INSERT INTO inventory_levels AS level (sku, location_id, on_hand, allocated, reserved, damaged, picked,
                                                   in_transit_in, in_transit_out, updated_at)
            SELECT sku, location_id, sum(d_on_hand), sum(d_allocated), sum(d_reserved), sum(d_damaged), sum(d_picked),
                   sum(d_in_transit_in), sum(d_in_transit_out), now()
            FROM lines WHERE touches_levels
            GROUP BY sku, location_id
            -- One lock order for every worker: overlapping batches wait instead of deadlocking.
            ORDER BY sku, location_id
            ON CONFLICT (sku, location_id) DO UPDATE SET
                on_hand = level.on_hand + EXCLUDED.on_hand,
                allocated = level.allocated + EXCLUDED.allocated,
                reserved = level.reserved + EXCLUDED.reserved,
                damaged = level.damaged + EXCLUDED.damaged,
                picked = level.picked + EXCLUDED.picked,
                in_transit_in = level.in_transit_in + EXCLUDED.in_transit_in,
                in_transit_out = level.in_transit_out + EXCLUDED.in_transit_out,
                updated_at = EXCLUDED.updated_at
            )
            SELECT event_id FROM new_events
            """).rows.map { try $0["event_id"].string() })
    }

    private func insertAdjustments(_ adjustments: [AdjustmentRecord], _ db: PostgresConnection) throws {
        guard !adjustments.isEmpty else { return }
        let counts = adjustments.map(\.count)
        try db.query("""
            INSERT INTO inventory_adjustments (event_id, sku, location_id, expected_count, actual_count, variance, reason,
                                               approved_by, audit_id, worker_on_hand, mirror_drift, occurred_at)
            SELECT a.event_id, a.sku, a.location_id, a.expected, a.actual, a.actual - a.expected, a.reason,
                   a.approved_by, a.audit_id, a.worker_on_hand, a.drift, to_timestamp(a.occurred_ms / 1000.0)
            FROM unnest(\(adjustments.map(\.eventId))::text[], \(counts.map(\.sku))::text[],
                        \(adjustments.map(\.locationId))::text[], \(counts.map(\.expectedCount))::bigint[],
                        \(counts.map(\.actualCount))::bigint[], \(counts.map(\.reason))::text[],
                        \(counts.map(\.approvedBy))::text[], \(counts.map(\.auditId))::text[],
                        \(adjustments.map(\.workerOnHand))::bigint[], \(adjustments.map(\.mirrorDrift))::bigint[],
                        \(adjustments.map(\.occurredAtMs))::bigint[])
                 AS a(event_id, sku, location_id, expected, actual, reason, approved_by, audit_id, worker_on_hand, drift, occurred_ms)
            ON CONFLICT (event_id) DO NOTHING
            """)
    }

    private func insertAlerts(_ alerts: [AlertRecord], _ db: PostgresConnection) throws {
        guard !alerts.isEmpty else { return }
        func variance<T: PostgresArrayElement>(_ read: (CycleCount) -> T) -> [T?] {
            alerts.map { if case .variance(let count) = $0.kind { read(count) } else { nil } }
        }
        let buckets: [String?] = alerts.map { if case .negative(let bucket, _) = $0.kind { bucket } else { nil } }
        let values: [Int64?] = alerts.map { if case .negative(_, let value) = $0.kind { value } else { nil } }
        let percents: [Double?] = alerts.map { if case .variance(let count) = $0.kind { count.percentVariance } else { nil } }
        try db.query("""
            INSERT INTO variance_alerts (message_id, alert_type, event_id, sku, location_id, bucket, value,
                                         expected_count, actual_count, variance, percent_variance, raised_at)
            SELECT a.message_id, a.alert_type, a.event_id, a.sku, a.location_id, a.bucket, a.value,
                   a.expected, a.actual, a.actual - a.expected, a.percent, to_timestamp(a.raised_ms / 1000.0)
            FROM unnest(\(alerts.map(\.messageId))::text[], \(alerts.map(\.alertType))::text[], \(alerts.map(\.eventId))::text[],
                        \(alerts.map(\.sku))::text[], \(alerts.map(\.locationId))::text[], \(buckets)::text[], \(values)::bigint[],
                        \(variance(\.expectedCount))::bigint[], \(variance(\.actualCount))::bigint[], \(percents)::float8[],
                        \(alerts.map(\.raisedAtMs))::bigint[])
                 AS a(message_id, alert_type, event_id, sku, location_id, bucket, value, expected, actual, percent, raised_ms)
            ON CONFLICT (message_id) DO NOTHING
            """)
    }

    /// An outbox row whose payload is larger than this is written by a statement
    /// of its own, its bytes bound in binary. In the array literal the others
    /// travel in, as hex, PostgreSQL parses two text characters a byte: a dead
    /// letter of a few mebibytes (section 6 keeps the original bytes, whatever
    /// their size) cost tens of milliseconds there.
    public static let largeOutboxPayload = 64 * 1024

    /// In the order the batch built them: publish_order, the sequence's next
    /// value, is taken row by row in that order, a large row between the runs of
    /// others around it.
    private func insertOutbox(_ records: [OutboxRecord], _ db: PostgresConnection) throws {
        var rest = records[...]
        while let first = rest.first {
            if first.payload.count > Self.largeOutboxPayload {
                try insertLargeOutboxRow(first, db)
                rest = rest.dropFirst()
            } else {
                let run = rest.prefix { $0.payload.count <= Self.largeOutboxPayload }
                try insertOutboxRows(run, db)
                rest = rest.dropFirst(run.count)
            }
        }
    }

    private func insertLargeOutboxRow(_ record: OutboxRecord, _ db: PostgresConnection) throws {
        try db.query("""
            INSERT INTO outbox (message_id, topic, message_key, payload, headers, event_id)
            VALUES (\(record.messageId), \(record.topic), \(record.key.map(PostgresBytes.init)), \(PostgresBytes(record.payload)),
                    \(record.headers.outboxJSON)::jsonb, \(record.eventId))
            ON CONFLICT (message_id) DO NOTHING
            """)
    }

    private func insertOutboxRows(_ records: ArraySlice<OutboxRecord>, _ db: PostgresConnection) throws {
        // publish_order is taken row by row in the order the sorted SELECT yields them.
        try db.query("""
            INSERT INTO outbox (message_id, topic, message_key, payload, headers, event_id)
            SELECT o.message_id, o.topic, decode(o.message_key, 'hex'), decode(o.payload, 'hex'), o.headers::jsonb, o.event_id
            FROM unnest(\(records.map(\.messageId))::text[], \(records.map(\.topic))::text[],
                        \(records.map { $0.key.map(Hex.encode) })::text[], \(records.map { Hex.encode($0.payload) })::text[],
                        \(records.map(\.headers.outboxJSON))::text[], \(records.map(\.eventId))::text[]) WITH ORDINALITY
                 AS o(message_id, topic, message_key, payload, headers, event_id, position)
            ORDER BY o.position
            ON CONFLICT (message_id) DO NOTHING
            """)
    }

    private func insertDeadLetters(_ records: [DeadLetterRecord], _ db: PostgresConnection) throws {
        guard !records.isEmpty else { return }
        try db.query("""
            INSERT INTO dead_letters (message_id, source_topic, source_partition, source_offset, error_code, detail, event_id)
            SELECT * FROM unnest(\(records.map(\.messageId))::text[], \(records.map(\.sourceTopic))::text[],
                                 \(records.map(\.sourcePartition))::int[], \(records.map(\.sourceOffset))::bigint[],
                                 \(records.map(\.error.code.rawValue))::text[], \(records.map(\.error.detail))::text[],
                                 \(records.map(\.error.eventId))::text[])
            ON CONFLICT (message_id) DO NOTHING
            """)
    }

    /// Allocations and backorders: new lines first, then fills and cancellations
    /// of lines that may have been confirmed in the same batch.
    private func writeOrderLines(_ batch: BatchRecords, _ db: PostgresConnection) throws {
        let confirmed = batch.confirmedLines
        if !confirmed.isEmpty {
            let lines = confirmed.map(\.line)
            try db.query("""
                INSERT INTO allocations (order_id, line_id, sku, location_id, quantity, reservation_id, decision, status,
                                         confirmed_by, allocated_by, allocated_at)
                SELECT c.order_id, c.line_id, c.sku, c.location_id, c.quantity, c.reservation_id, c.decision, c.status, c.event_id,
                       CASE WHEN c.status = 'allocated' THEN c.event_id END, CASE WHEN c.status = 'allocated' THEN now() END
                FROM unnest(\(confirmed.map(\.orderId))::text[], \(lines.map(\.lineId))::text[], \(lines.map(\.sku))::text[],
                            \(lines.map(\.locationId))::text[], \(lines.map(\.quantity))::bigint[], \(lines.map(\.reservationId))::text[],
                            \(confirmed.map(\.decision))::text[], \(confirmed.map(\.status))::text[], \(confirmed.map(\.eventId))::text[])
                     AS c(order_id, line_id, sku, location_id, quantity, reservation_id, decision, status, event_id)
                ON CONFLICT (order_id, line_id) DO NOTHING
                """)
            let queued = confirmed.filter { $0.status == "backordered" }
            if !queued.isEmpty {
                try db.query("""
                    INSERT INTO backorders AS b (order_id, line_id, sku, location_id, quantity, queue_seq, status, queued_by)
                    SELECT q.order_id, q.line_id, q.sku, q.location_id, q.quantity, q.seq, 'waiting', q.event_id
                    FROM unnest(\(queued.map(\.orderId))::text[], \(queued.map(\.line.lineId))::text[], \(queued.map(\.line.sku))::text[],
                                \(queued.map(\.line.locationId))::text[], \(queued.map(\.line.quantity))::bigint[],
                                \(queued.map(\.queueSeq))::bigint[], \(queued.map(\.eventId))::text[])
                         AS q(order_id, line_id, sku, location_id, quantity, seq, event_id)
                    -- A fill written first keeps its status; the queue's facts are filled in.
                    ON CONFLICT (order_id, line_id) DO UPDATE SET queue_seq = EXCLUDED.queue_seq, queued_by = EXCLUDED.queued_by
                    """)
            }
        }
        let filled = batch.filledLines
        if !filled.isEmpty {
            // An upsert: the fill may come before its confirmation reaches PostgreSQL.
            // A status only moves forward (backordered -> allocated), never back.
            try db.query("""
                WITH f AS (SELECT * FROM unnest(\(filled.map(\.orderId))::text[], \(filled.map(\.lineId))::text[],
                                                \(filled.map(\.sku))::text[], \(filled.map(\.locationId))::text[],
                                                \(filled.map(\.quantity))::bigint[], \(filled.map(\.confirmedBy))::text[],
                                                \(filled.map(\.eventId))::text[])
                                        AS f(order_id, line_id, sku, location_id, quantity, confirmed_by, event_id)),
                     b AS (INSERT INTO backorders AS b (order_id, line_id, sku, location_id, quantity, queue_seq, status,
                                                        queued_by, filled_by, closed_at)
                           SELECT order_id, line_id, sku, location_id, quantity, 0, 'filled', NULLIF(confirmed_by, ''), event_id, now()
                           FROM f
                           ON CONFLICT (order_id, line_id) DO UPDATE SET status = 'filled', filled_by = EXCLUDED.filled_by, closed_at = now()
                           WHERE b.status = 'waiting')
                INSERT INTO allocations AS a (order_id, line_id, sku, location_id, quantity, decision, status, confirmed_by,
                                              allocated_by, allocated_at)
                SELECT order_id, line_id, sku, location_id, quantity, 'backordered', 'allocated', confirmed_by, event_id, now()
                FROM f
                ON CONFLICT (order_id, line_id) DO UPDATE SET status = 'allocated', allocated_by = EXCLUDED.allocated_by, allocated_at = now()
                WHERE a.status = 'backordered'
                """)
        }
        let cancelled = batch.cancelledLines
        if !cancelled.isEmpty {
            try db.query("""
                WITH c AS (SELECT * FROM unnest(\(cancelled.map(\.orderId))::text[], \(cancelled.map(\.lineId))::text[],
                                                \(cancelled.map(\.eventId))::text[], \(cancelled.map(\.released))::bigint[],
                                                \(cancelled.map(\.picksUsed))::bigint[])
                                        AS c(order_id, line_id, event_id, released, picks_used)),
                     b AS (UPDATE backorders SET status = 'dropped', dropped_by = c.event_id, closed_at = now()
                           FROM c WHERE backorders.order_id = c.order_id AND backorders.line_id = c.line_id AND backorders.status = 'waiting')
                UPDATE allocations SET status = 'cancelled', released = c.released, picks_used = c.picks_used,
                                       cancelled_by = c.event_id, cancelled_at = now()
                FROM c WHERE allocations.order_id = c.order_id AND allocations.line_id = c.line_id AND allocations.status <> 'cancelled'
                """)
        }
        let cancellations = batch.orderCancellations
        if !cancellations.isEmpty {
            try db.query("""
                INSERT INTO order_cancellations (order_id, line_id, event_id)
                SELECT * FROM unnest(\(cancellations.map(\.orderId))::text[], \(cancellations.map(\.lineId))::text[],
                                     \(cancellations.map(\.eventId))::text[])
                ON CONFLICT DO NOTHING
                """)
        }
    }

    /// A confirmation and a cancellation of one order committed side by side can
    /// each miss the other. Under a lock per order, whichever commits second finds
    /// the lines a cancellation covers that are still allocated or waiting, and
    /// queues them in `pending_cancellations`.
    private func findLinesCancelledMeanwhile(_ batch: BatchRecords, _ db: PostgresConnection) throws {
        let orders = Array(Set(batch.confirmedLines.map(\.orderId) + batch.filledLines.map(\.orderId)
            + batch.orderCancellations.map(\.orderId))).sorted()
        guard !orders.isEmpty else { return }
        // Sorted: every worker takes the locks in one order. Per schema, like every
        // lock here: deployments sharing a database do not wait for each other.
        try db.query("""
            SELECT count(pg_advisory_xact_lock(hashtext('order ' || current_schema()), hashtext(o))) FROM unnest(\(orders)::text[]) AS o
            """)
        try db.query("""
            INSERT INTO pending_cancellations (order_id, line_id, sku, location_id, quantity, status, cancel_event_id)
            SELECT DISTINCT ON (a.order_id, a.line_id) a.order_id, a.line_id, a.sku, a.location_id, a.quantity, a.status, c.event_id
            FROM allocations a JOIN order_cancellations c ON c.order_id = a.order_id AND (c.line_id = '*' OR c.line_id = a.line_id)
            -- Both sides by the orders: the join alone read every cancellation ever made.
            WHERE a.order_id = ANY(\(orders)::text[]) AND c.order_id = ANY(\(orders)::text[]) AND a.status IN ('allocated', 'backordered')
            ORDER BY a.order_id, a.line_id, c.created_at
            ON CONFLICT DO NOTHING
            """)
    }

    /// Lines Redis released before PostgreSQL held them as Redis did wait in
    /// `pending_cancellations` with what Redis released and the status it released
    /// them from. Such a row wins over one `findLinesCancelledMeanwhile` wrote for
    /// the line: Redis is done. A late release's keys (a line released by its
    /// script now: `releasedInRedis` not set yet) are owed their expiry.
    private func holdReleasedBeforeAllocation(_ records: [LateCancellationRecord], _ db: PostgresConnection) throws {
        guard !records.isEmpty else { return }
        let lines = records.map(\.pending)
        try db.query("""
            INSERT INTO pending_cancellations AS p (order_id, line_id, sku, location_id, quantity, status, cancel_event_id, released, picks_used)
            SELECT * FROM unnest(\(lines.map(\.orderId))::text[], \(lines.map(\.line.lineId))::text[], \(lines.map(\.line.sku))::text[],
                                 \(lines.map(\.line.locationId))::text[], \(lines.map(\.line.quantity))::bigint[],
                                 \(lines.map(\.line.status))::text[], \(lines.map(\.cancelEventId))::text[],
                                 \(records.map(\.released))::bigint[], \(records.map(\.picksUsed))::bigint[])
            ON CONFLICT (order_id, line_id) DO UPDATE SET released = EXCLUDED.released, picks_used = EXCLUDED.picks_used,
                                                          cancel_event_id = EXCLUDED.cancel_event_id, status = EXCLUDED.status
            """)
        let owed = lines.filter { $0.releasedInRedis == nil }
        guard !owed.isEmpty else { return }
        try db.query("""
            INSERT INTO late_cancellation_releases (order_id, line_id, sku, location_id, cancel_event_id)
            SELECT * FROM unnest(\(owed.map(\.orderId))::text[], \(owed.map(\.line.lineId))::text[], \(owed.map(\.line.sku))::text[],
                                 \(owed.map(\.line.locationId))::text[], \(owed.map(\.cancelEventId))::text[])
            ON CONFLICT DO NOTHING
            """)
    }

    /// Releases pending lines: the line, its ledger row (on the cancellation's
    /// event), the level, and the pending row, together. Only the lines whose
    /// pending row this statement deleted (`k`) count: another worker, or a retry
    /// after an unknown COMMIT, that released them first leaves nothing to do.
    private func writeLateCancellations(_ records: [LateCancellationRecord], _ db: PostgresConnection) throws {
        guard !records.isEmpty else { return }
        let pending = records.map(\.pending)
        try db.query("""
            WITH l AS (SELECT * FROM unnest(\(pending.map(\.orderId))::text[], \(pending.map(\.line.lineId))::text[],
                                            \(pending.map(\.line.sku))::text[], \(pending.map(\.line.locationId))::text[],
                                            \(pending.map(\.cancelEventId))::text[], \(records.map(\.released))::bigint[],
                                            \(records.map(\.picksUsed))::bigint[], \(pending.map { $0.releasedInRedis == nil })::boolean[])
                                    AS l(order_id, line_id, sku, location_id, event_id, released, picks_used, scripted)),
                 done AS (DELETE FROM pending_cancellations p USING l
                          WHERE p.order_id = l.order_id AND p.line_id = l.line_id RETURNING p.order_id, p.line_id),
                 k AS (SELECT l.* FROM l JOIN done USING (order_id, line_id)),
                 -- The keys a late release's script wrote are owed their expiry (0011).
                 owed AS (INSERT INTO late_cancellation_releases (order_id, line_id, sku, location_id, cancel_event_id)
                          SELECT order_id, line_id, sku, location_id, event_id FROM k WHERE scripted
                          ON CONFLICT DO NOTHING),
                 lines AS (UPDATE allocations a SET status = 'cancelled', released = k.released, picks_used = k.picks_used,
                                                   cancelled_by = k.event_id, cancelled_at = now()
                           FROM k WHERE a.order_id = k.order_id AND a.line_id = k.line_id AND a.status <> 'cancelled'),
                 queue AS (UPDATE backorders b SET status = 'dropped', dropped_by = k.event_id, closed_at = now()
                           FROM k WHERE b.order_id = k.order_id AND b.line_id = k.line_id AND b.status = 'waiting'),
                 ledger AS (INSERT INTO inventory_transactions (event_id, entry_no, order_id, line_id, sku, location_id, event_type, d_allocated)
                            SELECT k.event_id,
                                   (SELECT coalesce(max(entry_no), 0) FROM inventory_transactions t WHERE t.event_id = k.event_id)
                                       + row_number() OVER (PARTITION BY k.event_id ORDER BY k.order_id, k.line_id),
                                   k.order_id, k.line_id, k.sku, k.location_id, 'ORDER_CANCELLED', -k.released
                            FROM k WHERE k.released > 0)
            -- An upsert: the line's level row may not exist yet (its confirmation is
            -- what created it, and that may be the transaction beside this one).
            INSERT INTO inventory_levels AS v (sku, location_id, allocated, updated_at)
            SELECT sku, location_id, -sum(released), now() FROM k WHERE released > 0 GROUP BY sku, location_id
            ORDER BY sku, location_id
            ON CONFLICT (sku, location_id) DO UPDATE SET allocated = v.allocated + EXCLUDED.allocated, updated_at = EXCLUDED.updated_at
            """)
    }

    private func outboxRecords(_ rows: PostgresRows) throws -> [OutboxRecord] {
        try rows.rows.map { row in
            OutboxRecord(
                messageId: try row["message_id"].string(), topic: try row["topic"].string(),
                key: row["message_key"].isNull ? nil : try row["message_key"].bytes(), payload: try row["payload"].bytes(),
                headers: try [OutboxRecord.Header](outboxJSON: try row["headers"].string()), eventId: row["event_id"].text)
        }
    }
}

/// Lower-case hexadecimal, as PostgreSQL's `decode(x, 'hex')` reads it.
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
