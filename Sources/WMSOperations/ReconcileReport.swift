import Foundation
import WMSStore

/// Who moves `reserved` in the Redis hashes.
public enum ReservedOwnership: String, Sendable, Codable, CaseIterable {
    /// A checkout service holds reservations in Redis: it adds to `reserved` (and
    /// takes from `available`) itself, and the worker's script takes a reservation
    /// back out when an order confirms it (contract, section 3: "`reserved` aside
    /// where a checkout service writes Redis directly"). PostgreSQL only sees those
    /// confirmations, as negative deltas, so its `reserved` is not Redis's: it is
    /// not compared with Redis, and a repair keeps Redis's value (0 for a lost key).
    case checkoutService = "checkout-service"
    /// Only the worker moves `reserved`: it is compared and rebuilt like every bucket.
    case worker
}

/// One value that differs: a field of the Redis hash against `inventory_levels`, or
/// a column of `inventory_levels` against the sum of the ledger. Every value known
/// for the field is given, whichever pair differs, so that one line says which
/// store is the odd one out.
public struct FieldDrift: Codable, Sendable, Hashable {
    public enum Check: String, Codable, Sendable {
        /// The Redis hash against `inventory_levels`.
        case redisVsLevels = "redis-levels"
        /// `inventory_levels` against the sum of the ledger's deltas.
        case levelsVsLedger = "levels-ledger"
    }

    public var check: Check
    /// `onHand` ... `inTransitOut`, or `available` (derived; see `Reconciler`).
    public var field: String
    /// nil: no Redis key, or the field is not an integer (then `redisText` holds it).
    public var redis: Int64?
    public var redisText: String?
    /// nil: no row in `inventory_levels`.
    public var levels: Int64?
    /// nil: no ledger row for the SKU-location.
    public var ledger: Int64?

    public init(check: Check, field: String, redis: Int64?, redisText: String? = nil, levels: Int64?, ledger: Int64?) {
        self.check = check
        self.field = field
        self.redis = redis
        self.redisText = redisText
        self.levels = levels
        self.ledger = ledger
    }
}

/// What is wrong at one SKU and location.
public struct SKULocationDrift: Codable, Sendable, Hashable {
    public var sku: String
    public var locationId: String
    public var redisKey: String
    /// Whether the Redis hash exists.
    public var inRedis: Bool
    /// Whether `inventory_levels` has a row.
    public var inLevels: Bool
    /// A key that cannot be read as the worker's hash (not a hash, or a name not of
    /// the form `inventory:live:{SKU}:LOCATION`).
    public var problem: String?
    public var fields: [FieldDrift]

    public init(sku: String, locationId: String, redisKey: String, inRedis: Bool, inLevels: Bool, problem: String? = nil,
                fields: [FieldDrift]) {
        self.sku = sku
        self.locationId = locationId
        self.redisKey = redisKey
        self.inRedis = inRedis
        self.inLevels = inLevels
        self.problem = problem
        self.fields = fields
    }

    /// A row in `inventory_levels` with no Redis hash: what Redis data loss looks like.
    public var isMissingInRedis: Bool { inLevels && !inRedis }
}

/// One value of an order line that differs between Redis and PostgreSQL, as text.
/// `decision`, `status`, `quantity` (the line key's `q`) and `released` compare the
/// line key with `allocations` (a field the key does not hold is not compared);
/// `queue` is the line's place in its backorder queue: the member's score against
/// `backorders.queue_seq` of the waiting line (nil: not a member, or not waiting).
public struct OrderLineFieldDrift: Codable, Sendable, Hashable {
    public var field: String
    public var redis: String?
    public var postgres: String?

    public init(field: String, redis: String?, postgres: String?) {
        self.field = field
        self.redis = redis
        self.postgres = postgres
    }
}

/// What is wrong with one order line: its line key, or its place in a queue.
public struct OrderLineDrift: Codable, Sendable, Hashable {
    public var sku: String
    /// "" when only a line key without a row names the line (keys carry no location).
    public var locationId: String
    public var orderId: String
    public var lineId: String
    /// The line key, or the queue's key for a member no waiting line accounts for.
    public var redisKey: String
    /// Whether Redis holds what `redisKey` names (the line key, or the member).
    public var inRedis: Bool
    /// Whether PostgreSQL has the line: a row in `allocations`, or a waiting one in
    /// `backorders`.
    public var inPostgres: Bool
    /// A key or member that cannot be read as the worker's (not a hash, not a
    /// sorted set, a name or member not of the worker's form).
    public var problem: String?
    public var fields: [OrderLineFieldDrift]

    public init(sku: String, locationId: String, orderId: String, lineId: String, redisKey: String, inRedis: Bool,
                inPostgres: Bool, problem: String? = nil, fields: [OrderLineFieldDrift]) {
        self.sku = sku
        self.locationId = locationId
        self.orderId = orderId
        self.lineId = lineId
        self.redisKey = redisKey
        self.inRedis = inRedis
        self.inPostgres = inPostgres
        self.problem = problem
        self.fields = fields
    }
}

/// The outcome of `Reconciler.compare`: counts, and the drifts found (the first
/// `maxListed` by SKU and location; `driftedSKULocations` and `driftedOrderLines`
/// are the true counts).
public struct ReconcileReport: Codable, Sendable, Hashable {
    /// `inventory:live:*` keys SCAN returned (a key is counted again if SCAN
    /// returns it twice, which Redis allows while the keyspace is resized).
    public var redisKeysScanned: Int
    /// Rows in `inventory_levels`.
    public var levelsRows: Int
    /// SKU-locations seen anywhere: a levels row, ledger rows, or a Redis hash.
    public var skuLocations: Int
    /// SKU-locations with at least one drift.
    public var driftedSKULocations: Int
    public var drifts: [SKULocationDrift]
    /// `inventory:line:*` keys SCAN returned.
    public var lineKeysScanned = 0
    /// Members of the `inventory:backorders:*` queues read.
    public var queueMembersScanned = 0
    /// Rows of `backorders` waiting.
    public var waitingLines = 0
    /// Order lines (and unreadable line keys or queues) with at least one drift.
    public var driftedOrderLines = 0
    public var orderLineDrifts: [OrderLineDrift] = []
    public var maxListed: Int
    public var reserved: ReservedOwnership

    public init(redisKeysScanned: Int, levelsRows: Int, skuLocations: Int, driftedSKULocations: Int, drifts: [SKULocationDrift],
                maxListed: Int, reserved: ReservedOwnership) {
        self.redisKeysScanned = redisKeysScanned
        self.levelsRows = levelsRows
        self.skuLocations = skuLocations
        self.driftedSKULocations = driftedSKULocations
        self.drifts = drifts
        self.maxListed = maxListed
        self.reserved = reserved
    }

    public var hasDrift: Bool { driftedSKULocations > 0 || driftedOrderLines > 0 }

    /// The report as JSON (keys sorted), for `--json`.
    public func json(pretty: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The report for people: one line per drifting field, aligned, then a summary.
    public func table() -> String {
        var lines: [String] = []
        func value(_ number: Int64?) -> String { number.map(String.init) ?? "-" }
        var levelRows: [[String]] = []
        for drift in drifts {
            if let problem = drift.problem {
                levelRows.append([drift.sku, drift.locationId, "redis-unreadable", "-", problem, drift.inLevels ? "row" : "-", "-"])
            }
            if drift.isMissingInRedis {
                levelRows.append([drift.sku, drift.locationId, "redis-missing", "-", "no key", "row", "-"])
            }
            for field in drift.fields {
                let redis = field.redisText.map { "'\($0.prefix(24))'" } ?? value(field.redis)
                levelRows.append([drift.sku, drift.locationId, field.check.rawValue, field.field, redis, value(field.levels), value(field.ledger)])
            }
        }
        lines += Self.aligned(header: ["SKU", "LOCATION", "CHECK", "FIELD", "REDIS", "LEVELS", "LEDGER"], rightAligned: [4, 5, 6],
                              levelRows, listed: drifts.count, drifted: driftedSKULocations, unit: "SKU-locations")
        var lineRows: [[String]] = []
        for drift in orderLineDrifts {
            let site = [drift.sku, drift.locationId.isEmpty ? "-" : drift.locationId, drift.orderId, drift.lineId]
            if let problem = drift.problem { lineRows.append(site + ["unreadable", problem, "-"]) }
            if !drift.inRedis { lineRows.append(site + ["line", "no key", drift.inPostgres ? "row" : "-"]) }
            if !drift.inPostgres { lineRows.append(site + ["line", "key", "no row"]) }
            for field in drift.fields { lineRows.append(site + [field.field, field.redis ?? "-", field.postgres ?? "-"]) }
        }
        lines += Self.aligned(header: ["SKU", "LOCATION", "ORDER", "LINE", "FIELD", "REDIS", "POSTGRES"], rightAligned: [],
                              lineRows, listed: orderLineDrifts.count, drifted: driftedOrderLines, unit: "order lines")
        lines.append("\(driftedSKULocations) of \(skuLocations) SKU-locations drift"
            + " (\(redisKeysScanned) Redis keys scanned, \(levelsRows) rows in inventory_levels)")
        lines.append("\(driftedOrderLines) order lines drift (\(lineKeysScanned) line keys and \(queueMembersScanned) queue members"
            + " scanned, \(waitingLines) lines waiting in PostgreSQL)")
        if reserved == .checkoutService {
            lines.append("reserved is not compared between Redis and PostgreSQL: the checkout service writes it in Redis")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `rows` under `header` in aligned columns, then how many more drift than are
    /// listed; nothing when there are no rows.
    private static func aligned(header: [String], rightAligned: Set<Int>, _ rows: [[String]], listed: Int, drifted: Int,
                                unit: String) -> [String] {
        guard !rows.isEmpty else { return [] }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        var lines = ([header] + rows).map { row in
            row.indices.map { column in
                let cell = row[column]
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned.contains(column) ? padding + cell : cell + padding
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        if listed < drifted {
            lines.append("... \(drifted - listed) more \(unit) drift (the first \(listed) are listed)")
        }
        return lines
    }
}

/// What `Reconciler.repair` wrote and deleted in Redis.
public struct RepairSummary: Codable, Sendable, Hashable {
    /// `inventory:live:*` hashes written from `inventory_levels`.
    public var liveHashesWritten = 0
    /// Hashes with no row in `inventory_levels`, deleted.
    public var liveHashesDeleted = 0
    /// Hashes with no row but a checkout reservation (`reserved` not 0), rewritten
    /// with that alone.
    public var liveHashesKeptForReservations = 0
    /// Backorder queues (`inventory:backorders:*`) written from the waiting lines.
    public var backorderQueuesWritten = 0
    /// Order line keys of waiting lines written.
    public var waitingLinesWritten = 0
    /// `inventory:backorder-seq:*` counters raised to PostgreSQL's highest place.
    public var backorderSequencesWritten = 0
    /// Keys deleted before the rebuild, since PostgreSQL cannot vouch for them.
    public var orderLineKeysDeleted = 0
    public var backorderQueuesDeleted = 0
    public var pickTalliesDeleted = 0
    public var deduplicationMarksDeleted = 0
    /// `inventory:display:*` entries deleted (when a display-cache connection was given).
    public var displayEntriesInvalidated = 0
    /// The Redis state the rebuilt Redis holds (its sentinel's token).
    public var redisState: RedisStateRecord?
    /// False when a worker's repair found Redis repaired already.
    public var rebuilt = true

    public init() {}

    /// The summary for people, one `name: count` line each.
    public func table() -> String {
        let lines: [(String, Int)] = [
            ("live hashes written", liveHashesWritten),
            ("live hashes deleted (no row in inventory_levels)", liveHashesDeleted),
            ("live hashes kept for checkout reservations", liveHashesKeptForReservations),
            ("backorder queues written", backorderQueuesWritten),
            ("waiting order lines written", waitingLinesWritten),
            ("backorder sequences written", backorderSequencesWritten),
            ("order line keys deleted", orderLineKeysDeleted),
            ("backorder queues deleted", backorderQueuesDeleted),
            ("pick tallies deleted", pickTalliesDeleted),
            ("deduplication marks deleted", deduplicationMarksDeleted),
            ("display-cache entries invalidated", displayEntriesInvalidated),
        ]
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { $0.0 + String(repeating: " ", count: width - $0.0.count) + "  " + String($0.1) }.joined(separator: "\n") + "\n"
    }
}
