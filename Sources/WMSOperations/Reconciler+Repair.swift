import Foundation
import Postgres
import Redis
import WMSDomain
import WMSPipeline
import WMSStore

extension Reconciler {
    /// Rebuilds from PostgreSQL the Redis state the pipeline needs: the recovery
    /// path after Redis lost its data, or a fix of the drift `compare` found. Only
    /// safe while every worker of the group is stopped. Safe to run again (after a
    /// failure half way, say).
    ///
    /// 1. Deletes what PostgreSQL cannot vouch for and the rebuild replaces: order
    ///    line keys, backorder queues, pick tallies, the scripts' deduplication
    ///    marks, and the lines cancellations resolved (counted with the marks: a
    ///    record of a run PostgreSQL may not hold, resolved again from it after the
    ///    repair). A worker killed between its Redis step and its PostgreSQL
    ///    transaction leaves in Redis the effects of events PostgreSQL does not
    ///    hold; the rebuild drops those effects, so the marks saying they were
    ///    applied must go too, or the replay that follows would skip them. Events
    ///    PostgreSQL holds never reach a script again (the batch looks them up
    ///    first), so no mark of theirs is needed.
    /// 2. Writes every `inventory:live:{SKU}:LOCATION` hash from `inventory_levels`
    ///    (DEL and HSET in one MULTI/EXEC per key), and deletes hashes with no row.
    /// 3. Writes every backorder queue and the key of each waiting line (what a
    ///    fill and a cancellation read), and raises each SKU's backorder sequence
    ///    to PostgreSQL's highest place, so new lines queue behind.
    ///
    /// Pick tallies and settled order lines are not written back: a cancellation
    /// reads what Redis no longer holds from PostgreSQL.
    ///
    /// It keeps the eventId claims (which payload of an eventId stands) and the
    /// checkout service's reservations (PostgreSQL does not have them).
    ///
    /// Fenced, so that workers may run meanwhile (one that found Redis lost runs
    /// it): under an advisory lock (one repair at a time; `RedisRepairUnderWay`
    /// otherwise), it first deletes Redis's state sentinel, so no script writes
    /// from then on, then gives PostgreSQL's `redis_state` a new token, which
    /// waits for the batches that checked the old one and makes every later one
    /// roll back; it reads PostgreSQL after that, and writes the new token into
    /// the sentinel last. A batch is either in the snapshot the rebuild reads, or
    /// runs again on the rebuilt Redis.
    ///
    /// `ifLost` (a worker's repair): once the lock is held, Redis is rebuilt only
    /// if it still does not hold the state PostgreSQL names (another worker may
    /// have repaired it meanwhile: then nothing is done, `rebuilt` is false),
    /// and `ifLost` is called first.
    public func repair(ifLost: (() -> Void)? = nil) throws -> RepairSummary {
        let store = InventoryStore(db: postgres)
        guard try store.tryLockRedisRepair() else { throw RedisRepairUnderWay() }
        defer { try? store.unlockRedisRepair() }
        let previous = try store.redisState()
        if let ifLost {
            if let previous, try RedisStateSentinel(previous).found(in: hot) == previous.token,
               try RedisStateGuard.lostWrites(store: store, hot: hot) == nil {
                var summary = RepairSummary()
                summary.redisState = previous
                summary.rebuilt = false
                return summary
            }
            ifLost()
        }
        try previous.map(RedisStateSentinel.init)?.remove(from: hot)
        let state = try store.renewRedisState(token: RedisStateGuard.newToken(), newDeployment: RedisStateGuard.newToken())
        var summary = RepairSummary()
        summary.deduplicationMarksDeleted = try deleteAll(TaggedKeys.namespace(RedisKeys.applied(sku: "", eventId: "")) + "*")
        summary.orderLineKeysDeleted = try deleteAll(LineKeys.pattern)
        summary.backorderQueuesDeleted = try deleteAll(QueueKeys.pattern)
        summary.pickTalliesDeleted = try deleteAll(TaggedKeys.namespace(RedisKeys.picked(sku: "", location: "", orderId: "")) + "*")
        summary.deduplicationMarksDeleted += try deleteAll(TaggedKeys.namespace(RedisKeys.cancelledLines(eventId: "")) + "*")
        try postgres.withTransaction { db in
            try db.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try writeLiveHashes(db, &summary)
            try deleteHashesWithoutRow(db, &summary)
            try writeQueues(db, &summary)
            try writeSequences(db, &summary)
        }
        try RedisStateSentinel(state).write(to: hot)
        summary.redisState = state
        return summary
    }

    // MARK: Live hashes

    private func writeLiveHashes(_ db: PostgresConnection, _ summary: inout RepairSummary) throws {
        try db.query("""
            DECLARE reconcile_levels NO SCROLL CURSOR FOR
            SELECT sku, location_id, on_hand, allocated, reserved, damaged, picked, in_transit_in, in_transit_out,
                   floor(extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms
            FROM inventory_levels
            """)
        try fetchAll("reconcile_levels", chunk: writeChunk, db) { rows in
            let levels = try rows.map { row in
                (sku: try row["sku"].string(), location: try row["location_id"].string(),
                 quantities: try Self.quantities(row, prefix: ""), updatedMs: try row["updated_ms"].int())
            }
            let keys = levels.map { RedisKeys.live(sku: $0.sku, location: $0.location) }
            let kept = try checkoutReserved(keys)
            try runAtomically(zip(levels, zip(keys, kept)).map { level, keyAndReserved in
                var quantities = level.quantities
                if let reserved = keyAndReserved.1 { quantities[.reserved] = reserved }
                return Self.rewrite(keyAndReserved.0, quantities, updatedMs: level.updatedMs)
            })
            summary.liveHashesWritten += levels.count
            try invalidateDisplay(skus: levels.map(\.sku), &summary)
        }
    }

    /// Hashes with no levels row: deleted, unless a checkout reservation holds
    /// `reserved` there (then that alone is kept).
    private func deleteHashesWithoutRow(_ db: PostgresConnection, _ summary: inout RepairSummary) throws {
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        try scan(LiveKeys.pattern) { keys in
            let orphans = try orphanKeys(keys, db: db, ledgerCounts: false)
            guard !orphans.isEmpty else { return }
            let kept = try checkoutReserved(orphans)
            var rewrites: [[RedisCommand]] = []
            var deletions: [RedisCommand] = []
            for (key, reserved) in zip(orphans, kept) {
                if let reserved, reserved != 0, LiveKeys.parse(key) != nil {
                    rewrites.append(Self.rewrite(key, Deltas([.reserved: reserved]), updatedMs: nowMs))
                } else {
                    deletions.append(RedisCommand("DEL", key))
                }
            }
            try runAtomically(rewrites)
            for reply in try hot.pipeline(deletions) { summary.liveHashesDeleted += Int(try reply.get().int ?? 0) }
            summary.liveHashesKeptForReservations += rewrites.count
            try invalidateDisplay(skus: orphans.compactMap { LiveKeys.parse($0)?.sku }, &summary)
        }
    }

    /// With a checkout service, the `reserved` each hash holds now (0 when it is gone,
    /// not an integer, or the key is not a hash); nil for each otherwise.
    private func checkoutReserved(_ keys: [String]) throws -> [Int64?] {
        guard reserved == .checkoutService else { return keys.map { _ in nil } }
        return try hot.pipeline(keys.map { RedisCommand("HGET", $0, Bucket.reserved.rawValue) }).map { reply in
            reply.string.flatMap(RedisHash.integer) ?? 0
        }
    }

    /// The hash as the script leaves it: every bucket, `available`, `updatedAt`.
    private static func rewrite(_ key: String, _ quantities: Deltas, updatedMs: Int64) -> [RedisCommand] {
        var hset: [any RedisArgument] = ["HSET", key]
        for bucket in Bucket.allCases {
            hset += [bucket.rawValue, quantities[bucket]] as [any RedisArgument]
        }
        hset += ["available", available(quantities, reserved: quantities[.reserved]), "updatedAt", updatedMs] as [any RedisArgument]
        return [RedisCommand("DEL", key), RedisCommand(hset)]
    }

    // MARK: Order lines

    /// Each waiting line into its queue, and its line key, as `apply_event.lua`
    /// writes them when it queues a line: member `ORDER|LINE|QUANTITY` scored by its
    /// place, and the hash {decision, status, q, confirmedBy, seq} with no expiry.
    private func writeQueues(_ db: PostgresConnection, _ summary: inout RepairSummary) throws {
        try db.query("""
            DECLARE reconcile_waiting NO SCROLL CURSOR FOR
            SELECT b.sku, b.location_id, b.order_id, b.line_id, b.quantity, b.queue_seq,
                   coalesce(a.decision, 'backordered') AS decision, coalesce(a.confirmed_by, b.queued_by, '') AS confirmed_by
            FROM backorders b LEFT JOIN allocations a ON a.order_id = b.order_id AND a.line_id = b.line_id
            WHERE b.status = 'waiting'
            ORDER BY b.sku, b.location_id, b.queue_seq, b.order_id, b.line_id
            """)
        // A queue may run over two chunks: it is emptied only when first met.
        var lastQueue: String?
        try fetchAll("reconcile_waiting", chunk: writeChunk, db) { rows in
            var groups: [[RedisCommand]] = []
            var current: (queue: String, zadd: [any RedisArgument], lines: [RedisCommand], first: Bool)?
            func close() {
                guard let queue = current else { return }
                groups.append((queue.first ? [RedisCommand("DEL", queue.queue)] : []) + [RedisCommand(queue.zadd)] + queue.lines)
                current = nil
            }
            for row in rows {
                let sku = try row["sku"].string()
                let orderId = try row["order_id"].string()
                let lineId = try row["line_id"].string()
                let quantity = try row["quantity"].int()
                let seq = try row["queue_seq"].int()
                let queue = RedisKeys.backorders(sku: sku, location: try row["location_id"].string())
                if current?.queue != queue {
                    close()
                    let first = lastQueue != queue
                    if first { summary.backorderQueuesWritten += 1 }
                    lastQueue = queue
                    current = (queue, ["ZADD", queue], [], first)
                }
                current!.zadd += [seq, "\(orderId)|\(lineId)|\(quantity)"] as [any RedisArgument]
                let line = RedisKeys.orderLine(sku: sku, orderId: orderId, lineId: lineId)
                current!.lines.append(RedisCommand("DEL", line))
                current!.lines.append(RedisCommand("HSET", line, "decision", try row["decision"].string(), "status", "backordered",
                                                   "q", quantity, "confirmedBy", try row["confirmed_by"].string(), "seq", seq))
                summary.waitingLinesWritten += 1
            }
            close()
            try runAtomically(groups)
        }
    }

    /// Each SKU's backorder sequence at least PostgreSQL's highest place for it, so
    /// that lines queued after the repair sort behind the waiting ones.
    private func writeSequences(_ db: PostgresConnection, _ summary: inout RepairSummary) throws {
        try db.query("""
            DECLARE reconcile_sequences NO SCROLL CURSOR FOR
            SELECT sku, max(queue_seq) AS seq FROM backorders GROUP BY sku HAVING max(queue_seq) > 0
            """)
        try fetchAll("reconcile_sequences", chunk: writeChunk, db) { rows in
            let sequences = try rows.map { (key: RedisKeys.backorderSequence(sku: try $0["sku"].string()), seq: try $0["seq"].int()) }
            let current = try hot.pipeline(sequences.map { RedisCommand("GET", $0.key) })
            // A key of another type reads as 0, and is overwritten.
            let raises = zip(sequences, current).filter { sequence, reply in (reply.string.flatMap(RedisHash.integer) ?? 0) < sequence.seq }
                .map { sequence, _ in RedisCommand("SET", sequence.key, sequence.seq) }
            for reply in try hot.pipeline(raises) { _ = try reply.get() }
            summary.backorderSequencesWritten += raises.count
        }
    }

    // MARK: Plumbing

    /// Deletes every key matching `pattern`, a SCAN page per pipeline (one UNLINK per
    /// key: each stays within its slot). Returns how many there were.
    private func deleteAll(_ pattern: String) throws -> Int {
        var deleted = 0
        try scan(pattern) { keys in
            for reply in try hot.pipeline(keys.map { RedisCommand("UNLINK", $0) }) { deleted += Int(try reply.get().int ?? 0) }
        }
        return deleted
    }

    /// Each group as one atomic step, all groups in one pipeline (per node, on a
    /// cluster). Every group touches one SKU's keys (one Redis Cluster slot).
    private func runAtomically(_ groups: [[RedisCommand]]) throws {
        for reply in try hot.atomically(groups) { _ = try reply.get() }
    }

    private func invalidateDisplay(skus: [String], _ summary: inout RepairSummary) throws {
        guard let displayCache else { return }
        let unique = Array(Set(skus))
        for reply in try displayCache.pipeline(unique.map { RedisCommand("UNLINK", RedisKeys.display(sku: $0)) }) {
            summary.displayEntriesInvalidated += Int(try reply.get().int ?? 0)
        }
    }
}
