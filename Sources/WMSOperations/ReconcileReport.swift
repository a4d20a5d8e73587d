import Foundation

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

/// The outcome of `Reconciler.compare`: counts, and the drifts found (the first
/// `maxListed` by SKU and location; `driftedSKULocations` is the true count).
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

    public var hasDrift: Bool { driftedSKULocations > 0 }

    /// The report as JSON (keys sorted), for `--json`.
    public func json(pretty: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The report for people: one line per drifting field, aligned, then a summary.
    public func table() -> String {
        var rows: [[String]] = []
        func value(_ number: Int64?) -> String { number.map(String.init) ?? "-" }
        for drift in drifts {
            if let problem = drift.problem {
                rows.append([drift.sku, drift.locationId, "redis-unreadable", "-", problem, drift.inLevels ? "row" : "-", "-"])
            }
            if drift.isMissingInRedis {
                rows.append([drift.sku, drift.locationId, "redis-missing", "-", "no key", "row", "-"])
            }
            for field in drift.fields {
                let redis = field.redisText.map { "'\($0.prefix(24))'" } ?? value(field.redis)
                rows.append([drift.sku, drift.locationId, field.check.rawValue, field.field, redis, value(field.levels), value(field.ledger)])
            }
        }
        var lines: [String] = []
        if !rows.isEmpty {
            let header = ["SKU", "LOCATION", "CHECK", "FIELD", "REDIS", "LEVELS", "LEDGER"]
            let numeric: Set<Int> = [4, 5, 6]
            let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
            for row in [header] + rows {
                lines.append(row.indices.map { column in
                    let cell = row[column]
                    let padding = String(repeating: " ", count: widths[column] - cell.count)
                    return numeric.contains(column) ? padding + cell : cell + padding
                }.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
            }
            if drifts.count < driftedSKULocations {
                lines.append("... \(driftedSKULocations - drifts.count) more SKU-locations drift (the first \(drifts.count) are listed)")
            }
        }
        lines.append("\(driftedSKULocations) of \(skuLocations) SKU-locations drift"
            + " (\(redisKeysScanned) Redis keys scanned, \(levelsRows) rows in inventory_levels)")
        if reserved == .checkoutService {
            lines.append("reserved is not compared between Redis and PostgreSQL: the checkout service writes it in Redis")
        }
        return lines.joined(separator: "\n") + "\n"
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
