import Foundation
import Postgres
import Redis
import WMSPipeline

/// What `compareOrderLines` found, until it goes into the report.
struct OrderLineComparison {
    var drifts: DriftList<OrderLineDrift>
    var lineKeysScanned = 0
    var queueMembersScanned = 0
    var waitingLines = 0

    init(maxListed: Int) { drifts = DriftList(limit: maxListed) }

    func fill(_ report: inout ReconcileReport) {
        report.lineKeysScanned = lineKeysScanned
        report.queueMembersScanned = queueMembersScanned
        report.waitingLines = waitingLines
        report.driftedOrderLines = drifts.count
        report.orderLineDrifts = drifts.listed
    }
}

/// An order line as PostgreSQL holds it, in the terms of its Redis line key.
struct StoredLine {
    var locationId: String
    var decision: String
    var status: String
    var quantity: Int64
    var released: Int64

    /// The line key's field for each compared value (`apply_event.lua` names them).
    var comparedFields: [(name: String, redisField: String, value: String)] {
        [("decision", "decision", decision), ("status", "status", status), ("quantity", "q", String(quantity)),
         ("released", "released", String(released))]
    }
}

extension Reconciler {
    /// Order lines and backorder queues against `allocations` and `backorders`, in
    /// the caller's snapshot. Redis keeps a line key only while its event is
    /// uncommitted plus a grace, except a waiting line's, kept while it waits; so a
    /// settled line without a key is no drift, but a key that disagrees with
    /// PostgreSQL is. Three passes, each line reported by one of them:
    /// 1. every waiting line of `backorders`: its line key must exist and agree, and
    ///    its member (`ORDER|LINE|QUANTITY`) must be in its queue at its place;
    /// 2. every other `inventory:line:*` key: it must agree with its `allocations`
    ///    row, and have one;
    /// 3. every queue member whose line is not waiting in that queue in PostgreSQL.
    ///    (A member of another quantity than the waiting line's is left to pass 1,
    ///    which finds the line's own member missing.)
    func compareOrderLines(_ db: PostgresConnection, maxListed: Int) throws -> OrderLineComparison {
        var comparison = OrderLineComparison(maxListed: maxListed)
        try compareWaitingLines(db, &comparison)
        try compareLineKeys(db, &comparison)
        try compareQueueMembers(db, &comparison)
        return comparison
    }

    private func compareWaitingLines(_ db: PostgresConnection, _ comparison: inout OrderLineComparison) throws {
        // Decision and released as `repair` writes them, when allocations has no row.
        try db.query("""
            DECLARE reconcile_waiting_compare NO SCROLL CURSOR FOR
            SELECT b.sku, b.location_id, b.order_id, b.line_id, b.quantity, b.queue_seq,
                   coalesce(a.decision, 'backordered') AS decision, coalesce(a.released, 0) AS released
            FROM backorders b LEFT JOIN allocations a ON a.order_id = b.order_id AND a.line_id = b.line_id
            WHERE b.status = 'waiting'
            """)
        try fetchAll("reconcile_waiting_compare", chunk: readChunk, db) { rows in
            let waiting = try rows.map { row in
                (sku: try row["sku"].string(), orderId: try row["order_id"].string(), lineId: try row["line_id"].string(),
                 seq: try row["queue_seq"].int(),
                 stored: StoredLine(locationId: try row["location_id"].string(), decision: try row["decision"].string(),
                                    status: "backordered", quantity: try row["quantity"].int(), released: try row["released"].int()))
            }
            var commands: [RedisCommand] = []
            for line in waiting {
                commands.append(RedisCommand("HGETALL", RedisKeys.orderLine(sku: line.sku, orderId: line.orderId, lineId: line.lineId)))
                commands.append(RedisCommand("ZSCORE", RedisKeys.backorders(sku: line.sku, location: line.stored.locationId),
                                             "\(line.orderId)|\(line.lineId)|\(line.stored.quantity)"))
            }
            let replies = try hot.pipeline(commands)
            for (index, line) in waiting.enumerated() {
                comparison.waitingLines += 1
                let key = RedisKeys.orderLine(sku: line.sku, orderId: line.orderId, lineId: line.lineId)
                var drift = evaluateLine(sku: line.sku, orderId: line.orderId, lineId: line.lineId, key: key,
                                         hash: RedisHash(replies[2 * index]), stored: line.stored)
                let place = replies[2 * index + 1]
                if case .error(let error) = place {
                    drift.problem = drift.problem ?? "queue \(RedisKeys.backorders(sku: line.sku, location: line.stored.locationId)): "
                        + (error.prefix == "WRONGTYPE" ? "not a sorted set" : "\(error)")
                } else if place.string.flatMap(Double.init) != Double(line.seq) {
                    drift.fields.append(OrderLineFieldDrift(field: "queue", redis: place.string, postgres: String(line.seq)))
                }
                // A waiting line's key stays as long as it waits: gone is drift.
                if !drift.inRedis || !drift.fields.isEmpty || drift.problem != nil { comparison.drifts.add(drift) }
            }
        }
    }

    private func compareLineKeys(_ db: PostgresConnection, _ comparison: inout OrderLineComparison) throws {
        // SCAN may return a key twice: its drift is counted once.
        var drifted = Set<String>()
        try scan(LineKeys.pattern) { keys in
            comparison.lineKeysScanned += keys.count
            var lines: [(key: String, sku: String, orderId: String, lineId: String)] = []
            for key in keys {
                if let line = LineKeys.parse(key) {
                    lines.append((key, line.sku, line.orderId, line.lineId))
                } else if drifted.insert(key).inserted {
                    comparison.drifts.add(OrderLineDrift(sku: "", locationId: "", orderId: "", lineId: "", redisKey: key, inRedis: true,
                                                         inPostgres: false, problem: "not a key of the form inventory:line:{SKU}:ORDER|LINE",
                                                         fields: []))
                }
            }
            guard !lines.isEmpty else { return }
            // Waiting lines were compared in the first pass.
            let rows = try db.query("""
                SELECT k.i, a.location_id, a.decision, a.status, a.quantity, a.released
                FROM unnest(\(lines.map(\.sku))::text[], \(lines.map(\.orderId))::text[], \(lines.map(\.lineId))::text[])
                     WITH ORDINALITY AS k(sku, order_id, line_id, i)
                LEFT JOIN allocations a ON a.order_id = k.order_id AND a.line_id = k.line_id AND a.sku = k.sku
                WHERE NOT EXISTS (SELECT 1 FROM backorders b WHERE b.order_id = k.order_id AND b.line_id = k.line_id
                                                               AND b.sku = k.sku AND b.status = 'waiting')
                """).rows
            let compared = try rows.map { row in
                (line: lines[Int(try row["i"].int()) - 1],
                 stored: row["location_id"].isNull ? nil : StoredLine(
                    locationId: try row["location_id"].string(), decision: try row["decision"].string(),
                    status: try row["status"].string(), quantity: try row["quantity"].int(), released: try row["released"].int()))
            }
            for (entry, hash) in zip(compared, try readHashes(compared.map(\.line.key))) {
                // Gone since SCAN: its grace ran out, which is no drift.
                guard hash.exists else { continue }
                let drift = evaluateLine(sku: entry.line.sku, orderId: entry.line.orderId, lineId: entry.line.lineId,
                                         key: entry.line.key, hash: hash, stored: entry.stored)
                if !drift.inPostgres || !drift.fields.isEmpty || drift.problem != nil, drifted.insert(entry.line.key).inserted {
                    comparison.drifts.add(drift)
                }
            }
        }
    }

    private func compareQueueMembers(_ db: PostgresConnection, _ comparison: inout OrderLineComparison) throws {
        var drifted = Set<String>()
        try scan(QueueKeys.pattern) { keys in
            for key in keys where !drifted.contains(key) {
                guard let queue = QueueKeys.parse(key) else {
                    drifted.insert(key)
                    comparison.drifts.add(OrderLineDrift(sku: "", locationId: "", orderId: "", lineId: "", redisKey: key, inRedis: true,
                                                         inPostgres: false, problem: "not a key of the form inventory:backorders:{SKU}:LOCATION",
                                                         fields: []))
                    continue
                }
                if let problem = try compareQueue(key, sku: queue.sku, location: queue.location, db, &comparison) {
                    drifted.insert(key)
                    comparison.drifts.add(OrderLineDrift(sku: queue.sku, locationId: queue.location, orderId: "", lineId: "",
                                                         redisKey: key, inRedis: true, inPostgres: false, problem: problem, fields: []))
                }
            }
        }
    }

    /// One queue, `readChunk` members at a time (by rank: with workers stopped the
    /// queue holds still). Returns why the queue cannot be read, if it cannot.
    private func compareQueue(_ key: String, sku: String, location: String, _ db: PostgresConnection,
                              _ comparison: inout OrderLineComparison) throws -> String? {
        let chunk = max(1, readChunk)
        var start = 0
        while true {
            let reply = try hot.send("ZRANGE", key, start, start + chunk - 1, "WITHSCORES")
            if case .error(let error) = reply { return error.prefix == "WRONGTYPE" ? "not a sorted set" : "\(error)" }
            guard let items = reply.array else { throw RedisError.unexpectedReply("ZRANGE returned \(reply)") }
            guard !items.isEmpty else { return nil }
            start += chunk
            var members: [(orderId: String, lineId: String, score: String)] = []
            for pair in stride(from: 0, to: items.count - 1, by: 2) {
                comparison.queueMembersScanned += 1
                let member = items[pair].string ?? ""
                let score = items[pair + 1].string ?? ""
                guard let line = QueueKeys.parseMember(member) else {
                    comparison.drifts.add(OrderLineDrift(sku: sku, locationId: location, orderId: "", lineId: "", redisKey: key,
                                                         inRedis: true, inPostgres: false,
                                                         problem: "member '\(member.prefix(60))' not of the form ORDER|LINE|QUANTITY",
                                                         fields: [OrderLineFieldDrift(field: "queue", redis: score, postgres: nil)]))
                    continue
                }
                members.append((line.orderId, line.lineId, score))
            }
            guard !members.isEmpty else { continue }
            let unaccounted = try db.query("""
                SELECT k.i, EXISTS (SELECT 1 FROM allocations a WHERE a.order_id = k.order_id AND a.line_id = k.line_id
                                                                 AND a.sku = \(sku)) AS in_allocations
                FROM unnest(\(members.map(\.orderId))::text[], \(members.map(\.lineId))::text[]) WITH ORDINALITY AS k(order_id, line_id, i)
                WHERE NOT EXISTS (SELECT 1 FROM backorders b WHERE b.order_id = k.order_id AND b.line_id = k.line_id
                                                               AND b.sku = \(sku) AND b.location_id = \(location) AND b.status = 'waiting')
                """).rows
            for row in unaccounted {
                let member = members[Int(try row["i"].int()) - 1]
                comparison.drifts.add(OrderLineDrift(sku: sku, locationId: location, orderId: member.orderId, lineId: member.lineId,
                                                     redisKey: key, inRedis: true, inPostgres: try row["in_allocations"].bool(),
                                                     fields: [OrderLineFieldDrift(field: "queue", redis: member.score, postgres: nil)]))
            }
        }
    }

    /// A line key against the line as PostgreSQL holds it (nil: no row). Compares
    /// only the fields the key holds: a key may lack some (a fill writes `status`
    /// alone, say), and `w:EVENT` / `writers` are the script's bookkeeping. The
    /// caller decides whether a missing key is drift.
    func evaluateLine(sku: String, orderId: String, lineId: String, key: String, hash: RedisHash, stored: StoredLine?) -> OrderLineDrift {
        var drift = OrderLineDrift(sku: sku, locationId: stored?.locationId ?? "", orderId: orderId, lineId: lineId, redisKey: key,
                                   inRedis: hash.exists, inPostgres: stored != nil, problem: hash.problem, fields: [])
        if hash.exists, hash.problem == nil, let stored {
            for compared in stored.comparedFields {
                if let redis = hash.text(compared.redisField), redis != compared.value {
                    drift.fields.append(OrderLineFieldDrift(field: compared.name, redis: redis, postgres: compared.value))
                }
            }
        }
        return drift
    }
}

/// `inventory:line:{SKU}:ORDER|LINE`, read back.
enum LineKeys {
    static let pattern = TaggedKeys.namespace(RedisKeys.orderLinePrefix(sku: "")) + "*"
    static func parse(_ key: String) -> (sku: String, orderId: String, lineId: String)? {
        guard let (sku, rest) = TaggedKeys.parse(key, { RedisKeys.orderLinePrefix(sku: $0) + $1 }) else { return nil }
        let ids = rest.split(separator: "|", omittingEmptySubsequences: false)
        guard ids.count == 2, !ids[0].isEmpty, !ids[1].isEmpty else { return nil }
        return (sku, String(ids[0]), String(ids[1]))
    }
}

/// `inventory:backorders:{SKU}:LOCATION` and its members `ORDER|LINE|QUANTITY`, read back.
enum QueueKeys {
    static let pattern = TaggedKeys.namespace(RedisKeys.backorders(sku: "", location: "")) + "*"
    static func parse(_ key: String) -> (sku: String, location: String)? {
        TaggedKeys.parse(key) { RedisKeys.backorders(sku: $0, location: $1) }
    }

    static func parseMember(_ member: String) -> (orderId: String, lineId: String, quantity: Int64)? {
        let parts = member.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, let quantity = RedisHash.integer(String(parts[2])) else {
            return nil
        }
        return (String(parts[0]), String(parts[1]), quantity)
    }
}
