import Foundation
import Postgres
import Redis
import WMSDomain
import WMSPipeline

/// `wms-worker reconcile`: compares the Redis hashes the worker owns with
/// `inventory_levels`, and `inventory_levels` with the sum of the ledger
/// (`compare`); rebuilds from PostgreSQL what the pipeline needs in Redis, the
/// recovery path after Redis lost its data (`repair`).
///
/// PostgreSQL is read in one REPEATABLE READ, READ ONLY transaction, so levels,
/// ledger and order lines are one snapshot, through cursors, a chunk at a time.
/// Redis is read with SCAN and pipelined commands, a chunk at a time. Memory stays
/// a chunk's worth (plus the listed drifts) whatever the number of SKU-locations.
/// Redis is read as it is: with workers running, a batch in flight shows as drift
/// in `compare` (`compareSettled` leaves it out). `repair` is only safe with every
/// worker of the group stopped.
///
/// Blocking, like the connections it uses: call it on a `DedicatedThread`.
public struct Reconciler {
    public let hot: RedisClient
    public let postgres: PostgresConnection
    /// Where `inventory:display:{SKU}` entries live; when given, `repair` deletes the
    /// entry of every SKU it rewrote.
    public var displayCache: RedisClient?
    public var reserved: ReservedOwnership
    /// Rows per cursor FETCH and keys per SCAN page (its COUNT) when reading.
    public var readChunk = 1000
    /// Keys per pipeline when writing.
    public var writeChunk = 500

    public init(hot: RedisClient, postgres: PostgresConnection, displayCache: RedisClient? = nil,
                reserved: ReservedOwnership = .checkoutService) {
        self.hot = hot
        self.postgres = postgres
        self.displayCache = displayCache
        self.reserved = reserved
    }

    // MARK: Compare

    /// `compare`, for beside running workers: a SKU-location in the middle of a
    /// batch (Redis written, PostgreSQL not yet) differs for a moment, so what
    /// differs is compared again after `pause` and only what differs both times is
    /// reported. Beyond 100,000 drifted SKU-locations (and `maxListed`) this is no
    /// passing moment: the second pass stands as it is.
    public func compareSettled(maxListed: Int = 1000, pause: () -> Void = { Thread.sleep(forTimeInterval: 2) }) throws -> ReconcileReport {
        let listable = max(maxListed, 100_000)
        var report = try compare(maxListed: listable)
        if report.hasDrift {
            let firstLevels = Self.names(report.drifts, count: report.driftedSKULocations, listable: listable)
            let firstLines = Self.names(report.orderLineDrifts, count: report.driftedOrderLines, listable: listable)
            pause()
            report = try compare(maxListed: listable)
            Self.keepFoundTwice(&report.drifts, count: &report.driftedSKULocations, firstLevels, listable: listable)
            Self.keepFoundTwice(&report.orderLineDrifts, count: &report.driftedOrderLines, firstLines, listable: listable)
        }
        report.maxListed = maxListed
        report.drifts = Array(report.drifts.prefix(maxListed))
        report.orderLineDrifts = Array(report.orderLineDrifts.prefix(maxListed))
        return report
    }

    /// What the first pass found, when it listed every drift it counted.
    private static func names<Drift: ListedDrift>(_ drifts: [Drift], count: Int, listable: Int) -> Set<[String]>? {
        count <= listable ? Set(drifts.map(\.listOrder)) : nil
    }

    private static func keepFoundTwice<Drift: ListedDrift>(_ drifts: inout [Drift], count: inout Int, _ first: Set<[String]>?,
                                                          listable: Int) {
        guard let first, count <= listable else { return }
        drifts = drifts.filter { first.contains($0.listOrder) }
        count = drifts.count
    }

    /// Every SKU-location of `inventory_levels` and the ledger against its Redis
    /// hash, then every Redis hash PostgreSQL has nothing for; then the order lines
    /// and backorder queues (`compareOrderLines`). Lists the first `maxListed`
    /// drifts of each kind by SKU and location; counts them all.
    public func compare(maxListed: Int = 1000) throws -> ReconcileReport {
        var drifts = DriftList<SKULocationDrift>(limit: maxListed)
        var levelsRows = 0
        var skuLocations = 0
        var keysScanned = 0
        var orderLines = OrderLineComparison(maxListed: maxListed)
        try postgres.withTransaction { db in
            try db.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            // Levels and ledger sums, joined: a ledger with no levels row shows too.
            try db.query("""
                DECLARE reconcile_compare NO SCROLL CURSOR FOR
                SELECT coalesce(l.sku, s.sku) AS sku, coalesce(l.location_id, s.location_id) AS location_id,
                       l.sku IS NOT NULL AS in_levels, l.on_hand, l.allocated, l.reserved, l.damaged, l.picked,
                       l.in_transit_in, l.in_transit_out,
                       s.sku IS NOT NULL AS in_ledger, s.on_hand AS ledger_on_hand, s.allocated AS ledger_allocated,
                       s.reserved AS ledger_reserved, s.damaged AS ledger_damaged, s.picked AS ledger_picked,
                       s.in_transit_in AS ledger_in_transit_in, s.in_transit_out AS ledger_in_transit_out
                FROM inventory_levels l
                FULL JOIN (SELECT sku, location_id, sum(d_on_hand) AS on_hand, sum(d_allocated) AS allocated,
                                  sum(d_reserved) AS reserved, sum(d_damaged) AS damaged, sum(d_picked) AS picked,
                                  sum(d_in_transit_in) AS in_transit_in, sum(d_in_transit_out) AS in_transit_out
                           FROM inventory_transactions GROUP BY sku, location_id) s
                     ON s.sku = l.sku AND s.location_id = l.location_id
                """)
            try fetchAll("reconcile_compare", chunk: readChunk, db) { rows in
                let stored = try rows.map { row in
                    (sku: try row["sku"].string(), location: try row["location_id"].string(),
                     levels: try row["in_levels"].bool() ? try Self.quantities(row, prefix: "") : nil,
                     ledger: try row["in_ledger"].bool() ? try Self.quantities(row, prefix: "ledger_") : nil)
                }
                let keys = stored.map { RedisKeys.live(sku: $0.sku, location: $0.location) }
                for (entry, (key, hash)) in zip(stored, zip(keys, try readHashes(keys))) {
                    skuLocations += 1
                    if entry.levels != nil { levelsRows += 1 }
                    if let drift = evaluate(sku: entry.sku, location: entry.location, key: key, levels: entry.levels,
                                            ledger: entry.ledger, hash: hash) {
                        drifts.add(drift)
                    }
                }
            }

            // Hashes with neither a levels row nor a ledger row (seen above otherwise).
            var orphansSeen = Set<String>()
            try scan(LiveKeys.pattern) { keys in
                keysScanned += keys.count
                let orphans = try orphanKeys(keys, db: db, ledgerCounts: true).filter { orphansSeen.insert($0).inserted }
                for (key, hash) in zip(orphans, try readHashes(orphans)) {
                    skuLocations += 1
                    let parsed = LiveKeys.parse(key)
                    let drift = parsed == nil
                        ? SKULocationDrift(sku: "", locationId: "", redisKey: key, inRedis: hash.exists, inLevels: false,
                                           problem: "not a key of the form inventory:live:{SKU}:LOCATION", fields: [])
                        : evaluate(sku: parsed!.sku, location: parsed!.location, key: key, levels: nil, ledger: nil, hash: hash)
                    if let drift { drifts.add(drift) }
                }
            }
            orderLines = try compareOrderLines(db, maxListed: maxListed)
        }
        var report = ReconcileReport(redisKeysScanned: keysScanned, levelsRows: levelsRows, skuLocations: skuLocations,
                                     driftedSKULocations: drifts.count, drifts: drifts.listed, maxListed: maxListed, reserved: reserved)
        orderLines.fill(&report)
        return report
    }

    /// What differs at one SKU-location; nil when nothing does. A missing levels row
    /// or ledger counts as zeros: a hash with all zeros and no row is what a script
    /// call that moved nothing leaves (an order line queued at a location without
    /// stock), not drift. A levels row without its hash is drift: every row was
    /// written after a script call created that hash.
    func evaluate(sku: String, location: String, key: String, levels: Deltas?, ledger: Deltas?, hash: RedisHash) -> SKULocationDrift? {
        var fields: [FieldDrift] = []
        let wanted = levels ?? Deltas()
        let summed = ledger ?? Deltas()
        if hash.exists, hash.problem == nil {
            for bucket in Bucket.allCases {
                let name = bucket.rawValue
                if let text = hash.texts[name] {
                    // The script refuses to touch a hash with a bucket like this.
                    fields.append(FieldDrift(check: .redisVsLevels, field: name, redis: nil, redisText: text,
                                             levels: levels?[bucket], ledger: ledger?[bucket]))
                } else if !(bucket == .reserved && reserved == .checkoutService), hash.value(name) != wanted[bucket] {
                    fields.append(FieldDrift(check: .redisVsLevels, field: name, redis: hash.value(name),
                                             levels: levels?[bucket], ledger: ledger?[bucket]))
                }
            }
            let name = "available"
            let reservedNow = { (quantities: Deltas) in reserved == .checkoutService ? hash.value(Bucket.reserved.rawValue) : quantities[.reserved] }
            if let text = hash.texts[name] {
                fields.append(FieldDrift(check: .redisVsLevels, field: name, redis: nil, redisText: text,
                                         levels: levels.map { Self.available($0, reserved: reservedNow($0)) },
                                         ledger: ledger.map { Self.available($0, reserved: reservedNow($0)) }))
            } else if hash.value(name) != Self.available(wanted, reserved: reservedNow(wanted)) {
                fields.append(FieldDrift(check: .redisVsLevels, field: name, redis: hash.value(name),
                                         levels: levels.map { Self.available($0, reserved: reservedNow($0)) },
                                         ledger: ledger.map { Self.available($0, reserved: reservedNow($0)) }))
            }
        }
        for bucket in Bucket.allCases where wanted[bucket] != summed[bucket] {
            let name = bucket.rawValue
            fields.append(FieldDrift(check: .levelsVsLedger, field: name,
                                     redis: hash.exists && hash.problem == nil && hash.texts[name] == nil ? hash.value(name) : nil,
                                     levels: levels?[bucket], ledger: ledger?[bucket]))
        }
        let missing = levels != nil && !hash.exists
        guard !fields.isEmpty || missing || hash.problem != nil else { return nil }
        return SKULocationDrift(sku: sku, locationId: location, redisKey: key, inRedis: hash.exists, inLevels: levels != nil,
                                problem: hash.problem, fields: fields)
    }

    /// `available` as `apply_event.lua` derives it after every change (its local
    /// function `available`; contract, section 2): onHand - allocated - reserved.
    static func available(_ quantities: Deltas, reserved: Int64) -> Int64 {
        quantities[.onHand] - quantities[.allocated] - reserved
    }

    /// The seven buckets of a row, from the `inventory_levels` column names
    /// (`Bucket.column`) with a prefix.
    static func quantities(_ row: PostgresRow, prefix: String) throws -> Deltas {
        var quantities = Deltas()
        for bucket in Bucket.allCases {
            quantities[bucket] = try row[prefix + bucket.column].int()
        }
        return quantities
    }

    // MARK: Redis reads

    /// HGETALL of every key, one pipeline.
    func readHashes(_ keys: [String]) throws -> [RedisHash] {
        try hot.pipeline(keys.map { RedisCommand("HGETALL", $0) }).map(RedisHash.init)
    }

    /// Every chunk of an open cursor, `chunk` rows at a time; then closes it.
    func fetchAll(_ cursor: StaticString, chunk: Int, _ db: PostgresConnection, _ body: ([PostgresRow]) throws -> Void) throws {
        while true {
            let rows = try db.query(PostgresQuery(unsafeSQL: "FETCH FORWARD \(max(1, chunk)) FROM \(cursor)")).rows
            guard !rows.isEmpty else { break }
            try body(rows)
        }
        try db.query(PostgresQuery(unsafeSQL: "CLOSE \(cursor)"))
    }

    /// Calls `body` with every page of keys matching `pattern`, SCAN's COUNT
    /// `readChunk`: a SCAN of every primary, on a cluster.
    func scan(_ pattern: String, _ body: ([String]) throws -> Void) throws {
        for node in try hot.primaries() {
            var cursor = "0"
            repeat {
                let reply = try node.send("SCAN", cursor, "MATCH", pattern, "COUNT", max(1, readChunk))
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let page = parts[1].array else {
                    throw RedisError.unexpectedReply("SCAN returned \(reply)")
                }
                cursor = next
                let keys = page.compactMap(\.string)
                if !keys.isEmpty { try body(keys) }
            } while cursor != "0"
        }
    }

    /// The live keys among `keys` with no row in `inventory_levels` (and, with
    /// `ledgerCounts`, no ledger row either), and those that are not of the
    /// worker's form at all. One query.
    func orphanKeys(_ keys: [String], db: PostgresConnection, ledgerCounts: Bool) throws -> [String] {
        var unparsed: [String] = []
        var parsed: [(key: String, sku: String, location: String)] = []
        for key in keys {
            if let (sku, location) = LiveKeys.parse(key) { parsed.append((key, sku, location)) } else { unparsed.append(key) }
        }
        guard !parsed.isEmpty else { return unparsed }
        let skus = parsed.map(\.sku)
        let locations = parsed.map(\.location)
        let rows = ledgerCounts
            ? try db.query("""
                SELECT k.i FROM unnest(\(skus)::text[], \(locations)::text[]) WITH ORDINALITY AS k(sku, location_id, i)
                WHERE NOT EXISTS (SELECT 1 FROM inventory_levels l WHERE l.sku = k.sku AND l.location_id = k.location_id)
                  AND NOT EXISTS (SELECT 1 FROM inventory_transactions t WHERE t.sku = k.sku AND t.location_id = k.location_id)
                """).rows
            : try db.query("""
                SELECT k.i FROM unnest(\(skus)::text[], \(locations)::text[]) WITH ORDINALITY AS k(sku, location_id, i)
                WHERE NOT EXISTS (SELECT 1 FROM inventory_levels l WHERE l.sku = k.sku AND l.location_id = k.location_id)
                """).rows
        return unparsed + (try rows.map { parsed[Int(try $0["i"].int()) - 1].key })
    }
}

/// A Redis hash as HGETALL returned it.
struct RedisHash {
    var exists = false
    /// Not readable as the worker's hash (a key of another type).
    var problem: String?
    var integers: [String: Int64] = [:]
    /// Fields that are not integers.
    var texts: [String: String] = [:]

    init(_ reply: RESPValue) {
        switch reply {
        case .array(let items):
            exists = !items.isEmpty
            var index = 0
            while index + 1 < items.count {
                let field = items[index].string ?? ""
                let text = items[index + 1].string ?? ""
                if let number = Self.integer(text) { integers[field] = number } else { texts[field] = text }
                index += 2
            }
        case .error(let error):
            exists = true
            problem = error.prefix == "WRONGTYPE" ? "not a hash" : "\(error)"
        default:
            exists = true
            problem = "unexpected reply \(reply)"
        }
    }

    /// A field as the script reads it: missing is 0.
    func value(_ field: String) -> Int64 { integers[field] ?? 0 }

    /// A field as text (an integer as Redis would print it); nil when missing.
    func text(_ field: String) -> String? { texts[field] ?? integers[field].map(String.init) }

    /// What the script accepts as an integer (`^-?%d+$`), within Int64.
    static func integer(_ text: String) -> Int64? {
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int64(text)
    }
}

/// Reading back the names `RedisKeys` builds as `NAMESPACE{SKU}:LOCATION`.
enum TaggedKeys {
    /// What comes before the hash tag, e.g. `inventory:live:`.
    static func namespace(_ sample: String) -> String { String(sample.prefix { $0 != "{" }) }

    /// The SKU and the rest of a key built by `build`, or nil when `build` would not
    /// have built it. Neither a SKU nor a location holds `}` or `:`.
    static func parse(_ key: String, _ build: (String, String) -> String) -> (sku: String, location: String)? {
        let prefix = namespace(build("", "")) + "{"
        guard key.hasPrefix(prefix), let close = key.firstIndex(of: "}") else { return nil }
        let sku = String(key[key.index(key.startIndex, offsetBy: prefix.count)..<close])
        let rest = key[key.index(after: close)...]
        guard rest.hasPrefix(":") else { return nil }
        let location = String(rest.dropFirst())
        guard !sku.isEmpty, !location.isEmpty, build(sku, location) == key else { return nil }
        return (sku, location)
    }
}

enum LiveKeys {
    static let pattern = TaggedKeys.namespace(RedisKeys.live(sku: "", location: "")) + "*"
    static func parse(_ key: String) -> (sku: String, location: String)? {
        TaggedKeys.parse(key) { RedisKeys.live(sku: $0, location: $1) }
    }
}

/// A drift as the report lists it: in the order of `listOrder`, which also names it
/// (two passes of `compareSettled` find the same drift under the same name).
protocol ListedDrift {
    var listOrder: [String] { get }
}

extension SKULocationDrift: ListedDrift {
    var listOrder: [String] { [sku, locationId, redisKey] }
}

extension OrderLineDrift: ListedDrift {
    var listOrder: [String] { [sku, locationId, orderId, lineId, redisKey] }
}

/// The drifts found, the first `limit` by `listOrder` kept, all counted.
struct DriftList<Drift: ListedDrift> {
    let limit: Int
    private(set) var count = 0
    private var kept: [Drift] = []

    init(limit: Int) { self.limit = max(0, limit) }

    mutating func add(_ drift: Drift) {
        count += 1
        guard limit > 0 else { return }
        kept.append(drift)
        if kept.count >= 2 * limit { trim() }
    }

    var listed: [Drift] {
        var list = self
        list.trim()
        return list.kept
    }

    private mutating func trim() {
        kept.sort { $0.listOrder.lexicographicallyPrecedes($1.listOrder) }
        if kept.count > limit { kept.removeLast(kept.count - limit) }
    }
}
