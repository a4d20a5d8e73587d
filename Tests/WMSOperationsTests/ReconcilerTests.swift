import Foundation
import Kafka
import Logging
import Postgres
import Redis
import Testing
import TestSupport
import WMSOperations
import WMSPipeline

/// `reconcile`: Redis against PostgreSQL, and Redis rebuilt from PostgreSQL, on
/// state the real pipeline produced from events. Reconcile scans the whole Redis
/// database, so the suite has one of its own (11), emptied before each test, and
/// its tests run one at a time.
@Suite(.serialized) struct ReconcilerTests {
    // MARK: Compare

    @Test func aCleanStateHasNoDrift() async throws {
        let f = try await ReconcileFixture.create()
        let (a, b, c) = (f.sku("A"), f.sku("B"), f.sku("C"))
        let report = try await blocking {
            try f.seedDay()
            return try f.reconciler().compare()
        }
        #expect(!report.hasDrift, "\(report.table())")
        #expect(report.drifts.isEmpty)
        #expect(report.levelsRows == 3)
        // C's hash (a line queued where it never had stock: all zeros, no row) is no drift.
        #expect(report.redisKeysScanned == 4)
        #expect(report.skuLocations == 4)
        #expect(report.table().hasSuffix("0 of 4 SKU-locations drift (4 Redis keys scanned, 3 rows in inventory_levels)\n"
            + "0 order lines drift (3 line keys and 2 queue members scanned, 2 lines waiting in PostgreSQL)\n"
            + "reserved is not compared between Redis and PostgreSQL: the checkout service writes it in Redis\n"))
        let levels = try await blocking { try f.levels() }
        #expect(levels == ["\(a)@FC1": [7, 3, 0, 0, 1, 0, 2], "\(b)@FC1": [5, 0, 0, 0, 0, 0, 0], "\(a)@FC2": [2, 0, 0, 1, 0, 2, 0]])
        #expect(try await blocking { try f.redis().send("EXISTS", "inventory:live:{\(c)}:FC3").int } == 1)
        try await f.schema.drop()
    }

    /// Allocated, filled, cancelled and waiting lines as the pipeline leaves them:
    /// their line keys and queues agree with `allocations` and `backorders`.
    @Test func orderLinesOfANormalRunHaveNoDrift() async throws {
        let f = try await ReconcileFixture.create()
        let b = f.sku("B")
        let report = try await blocking {
            try f.seedDay()
            try f.produce([
                ReconcileEvents.cancelled("\(f.id)-x1", order: "O1"),                      // allocated, 1 of 4 picked
                ReconcileEvents.cancelled("\(f.id)-x3", order: "O3"),                      // waiting: dropped
                ReconcileEvents.confirmed("\(f.id)-o5", order: "O5", [("1", b, "FC1", 6)]),  // 5 available: waits behind O2
                ReconcileEvents.receiving("\(f.id)-r4", at: "FC1", [(b, 4)]),               // fills O2 (8), not O5
                ReconcileEvents.confirmed("\(f.id)-o6", order: "O6", [("1", b, "FC1", 2)]),  // 1 available: waits
            ])
            try f.run(untilSeen: 5)
            return try f.reconciler().compare()
        }
        let rows = try await blocking { try f.allocationRows() }
        #expect(rows["O1/1"] == "available/cancelled/3")
        #expect(rows["O2/1"] == "backordered/allocated/0")
        #expect(rows["O3/1"] == "backordered/cancelled/0")
        #expect(!report.hasDrift, "\(report.table())")
        #expect(report.driftedOrderLines == 0)
        #expect(report.waitingLines == 2)            // O5, O6
        #expect(report.queueMembersScanned == 2)
        #expect(report.lineKeysScanned == 5)         // O1, O2, O3 (in their grace), O5, O6
        try await f.schema.drop()
    }

    /// Defect 6's end state (a line released in Redis, still allocated in
    /// PostgreSQL), and a queue that lost, gained or changed a member.
    @Test func orderLineDriftPlantedInRedisIsFound() async throws {
        let f = try await ReconcileFixture.create()
        let (a, b, c) = (f.sku("A"), f.sku("B"), f.sku("C"))
        let (report, capped) = try await blocking {
            try f.seedDay()
            let redis = try f.redis()
            try redis.send("HSET", "inventory:line:{\(a)}:O1|1", "status", "cancelled", "released", 3)   // released in Redis only
            try redis.send("ZREM", "inventory:backorders:{\(b)}:FC1", "O2|1|8")                          // a waiting line lost
            try redis.send("ZADD", "inventory:backorders:{\(b)}:FC1", 7, "O7|1|3")                        // a line PostgreSQL has not queued
            try redis.send("ZREM", "inventory:backorders:{\(c)}:FC3", "O3|1|2")                          // a quantity changed
            try redis.send("ZADD", "inventory:backorders:{\(c)}:FC3", 1, "O3|1|5")
            try redis.send("HSET", "inventory:line:{\(c)}:O8|1", "decision", "available", "status", "allocated", "q", 1)  // no row
            let reconciler = try f.reconciler()
            return (try reconciler.compare(), try reconciler.compare(maxListed: 2))
        }
        #expect(report.hasDrift)
        #expect(report.driftedSKULocations == 0, "\(report.table())")
        #expect(report.driftedOrderLines == 5, "\(report.table())")
        let byLine = Dictionary(report.orderLineDrifts.map { ("\($0.sku)/\($0.orderId)/\($0.lineId)", $0) }) { first, _ in first }
        let released = try #require(byLine["\(a)/O1/1"])
        #expect(released.locationId == "FC1" && released.inRedis && released.inPostgres)
        #expect(released.fields == [
            OrderLineFieldDrift(field: "status", redis: "cancelled", postgres: "allocated"),
            OrderLineFieldDrift(field: "released", redis: "3", postgres: "0"),
        ])
        #expect(byLine["\(b)/O2/1"]?.fields == [OrderLineFieldDrift(field: "queue", redis: nil, postgres: "1")])
        let extra = try #require(byLine["\(b)/O7/1"])
        #expect(extra.redisKey == "inventory:backorders:{\(b)}:FC1" && !extra.inPostgres)
        #expect(extra.fields == [OrderLineFieldDrift(field: "queue", redis: "7", postgres: nil)])
        #expect(byLine["\(c)/O3/1"]?.fields == [OrderLineFieldDrift(field: "queue", redis: nil, postgres: "1")])
        let orphan = try #require(byLine["\(c)/O8/1"])
        #expect(orphan.inRedis && !orphan.inPostgres && orphan.locationId == "")

        let decoded = try JSONDecoder().decode(ReconcileReport.self, from: report.json())
        #expect(decoded == report)
        #expect(String(decoding: try report.json(), as: UTF8.self).contains(#""driftedOrderLines" : 5"#))
        let table = report.table()
        #expect(table.contains("5 order lines drift"))
        let statusLine = try #require(table.split(separator: "\n").first { $0.hasPrefix(a) && $0.contains("status") })
        #expect(statusLine.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            == [a, "FC1", "O1", "1", "status", "cancelled", "allocated"])

        #expect(capped.orderLineDrifts.count == 2)
        #expect(capped.driftedOrderLines == 5)
        #expect(capped.table().contains("... 3 more order lines drift (the first 2 are listed)"))
        try await f.schema.drop()
    }

    /// `repair` leaves nothing `compare` reports about order lines and queues.
    @Test func repairClearsOrderLineDrift() async throws {
        let f = try await ReconcileFixture.create()
        let (a, b) = (f.sku("A"), f.sku("B"))
        let (before, repaired) = try await blocking {
            try f.seedDay()
            let redis = try f.redis()
            try redis.send("HSET", "inventory:line:{\(a)}:O1|1", "status", "cancelled", "released", 3)
            try redis.send("ZREM", "inventory:backorders:{\(b)}:FC1", "O2|1|8")
            try redis.send("ZADD", "inventory:backorders:{\(b)}:FC1", 7, "O7|1|3")
            try redis.send("DEL", "inventory:line:{\(b)}:O2|1")
            let reconciler = try f.reconciler()
            let before = try reconciler.compare()
            _ = try reconciler.repair()
            return (before, try reconciler.compare())
        }
        #expect(before.driftedOrderLines == 3, "\(before.table())")
        #expect(!repaired.hasDrift, "\(repaired.table())")
        #expect(repaired.waitingLines == 2 && repaired.queueMembersScanned == 2)
        try await f.schema.drop()
    }

    /// Beside running workers: drift gone by the second pass (a batch that was in
    /// flight) is not reported; drift still there is.
    @Test func settledComparisonLeavesOutDriftThatPasses() async throws {
        let f = try await ReconcileFixture.create()
        let (a, b) = (f.sku("A"), f.sku("B"))
        let report = try await blocking {
            try f.seedDay()
            let redis = try f.redis()
            let passing = try redis.send("HGET", "inventory:live:{\(a)}:FC1", "onHand").int ?? 0
            try redis.send("HSET", "inventory:live:{\(a)}:FC1", "onHand", passing + 1)     // in flight
            try redis.send("HSET", "inventory:live:{\(b)}:FC1", "onHand", 99)              // real
            try redis.send("HSET", "inventory:line:{\(a)}:O1|1", "status", "cancelled")    // in flight
            try redis.send("ZREM", "inventory:backorders:{\(b)}:FC1", "O2|1|8")           // real
            return try f.reconciler().compareSettled(pause: {
                _ = try? redis.send("HSET", "inventory:live:{\(a)}:FC1", "onHand", passing)   // the batch commits
                _ = try? redis.send("HSET", "inventory:line:{\(a)}:O1|1", "status", "allocated")
            })
        }
        #expect(report.driftedSKULocations == 1)
        #expect(report.drifts.map(\.sku) == [b])
        #expect(report.driftedOrderLines == 1)
        #expect(report.orderLineDrifts.map(\.orderId) == ["O2"])
        try await f.schema.drop()
    }

    @Test func driftPlantedInRedisIsFound() async throws {
        let f = try await ReconcileFixture.create()
        let (a, b, x) = (f.sku("A"), f.sku("B"), f.sku("X"))
        let (report, capped) = try await blocking {
            try f.seedDay()
            let redis = try f.redis()
            try redis.send("HSET", "inventory:live:{\(a)}:FC1", "onHand", 99)            // a changed field
            try redis.send("DEL", "inventory:live:{\(b)}:FC1")                           // a lost key
            try redis.send("HSET", "inventory:live:{\(x)}:FC9", "onHand", 5, "available", 5)  // a key PostgreSQL has no row for
            try redis.send("HSET", "inventory:live:{\(a)}:FC2", "damaged", "1.5")        // what the script refuses
            try redis.send("SET", "inventory:live:{\(x)}:FC8", "not a hash")
            let reconciler = try f.reconciler()
            return (try reconciler.compare(), try reconciler.compare(maxListed: 2))
        }
        #expect(report.driftedSKULocations == 5)
        #expect(report.skuLocations == 6)
        let bySite = Dictionary(uniqueKeysWithValues: report.drifts.map { ("\($0.sku)@\($0.locationId)", $0) })
        #expect(bySite["\(a)@FC1"]?.fields == [FieldDrift(check: .redisVsLevels, field: "onHand", redis: 99, levels: 7, ledger: 7)])
        #expect(bySite["\(a)@FC1"]?.inRedis == true)
        let lost = try #require(bySite["\(b)@FC1"])
        #expect(lost.isMissingInRedis && lost.fields.isEmpty)
        #expect(bySite["\(x)@FC9"]?.inLevels == false)
        #expect(bySite["\(x)@FC9"]?.fields == [
            FieldDrift(check: .redisVsLevels, field: "onHand", redis: 5, levels: nil, ledger: nil),
            FieldDrift(check: .redisVsLevels, field: "available", redis: 5, levels: nil, ledger: nil),
        ])
        #expect(bySite["\(a)@FC2"]?.fields == [FieldDrift(check: .redisVsLevels, field: "damaged", redis: nil, redisText: "1.5", levels: 1, ledger: 1)])
        #expect(bySite["\(x)@FC8"]?.problem == "not a hash")

        let decoded = try JSONDecoder().decode(ReconcileReport.self, from: report.json())
        #expect(decoded == report)
        let json = String(decoding: try report.json(), as: UTF8.self)
        #expect(json.contains(#""driftedSKULocations" : 5"#))

        let table = report.table()
        #expect(table.contains("5 of 6 SKU-locations drift"))
        let onHandLine = try #require(table.split(separator: "\n").first { $0.hasPrefix(a) && $0.contains("onHand") })
        #expect(onHandLine.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            == [a, "FC1", "redis-levels", "onHand", "99", "7", "7"])
        #expect(table.contains("redis-missing"))

        // The list is capped, the count is not.
        #expect(capped.drifts.count == 2)
        #expect(capped.driftedSKULocations == 5)
        #expect(capped.table().contains("... 3 more SKU-locations drift (the first 2 are listed)"))
        try await f.schema.drop()
    }

    @Test func driftBetweenLevelsAndLedgerIsFound() async throws {
        let f = try await ReconcileFixture.create()
        let (a, z) = (f.sku("A"), f.sku("Z"))
        let report = try await blocking {
            try f.seedDay()
            let db = try f.db()
            try db.query("UPDATE inventory_levels SET damaged = damaged + 2 WHERE sku = \(a) AND location_id = 'FC2'")
            // A ledger row whose levels row never came.
            try db.query("""
                INSERT INTO inventory_transactions (event_id, entry_no, sku, location_id, event_type, d_on_hand)
                VALUES (\("\(f.id)-r1"), 99, \(z), 'FC7', 'RECEIVING_COMPLETE', 4)
                """)
            return try f.reconciler().compare()
        }
        #expect(report.driftedSKULocations == 2)
        let bySite = Dictionary(uniqueKeysWithValues: report.drifts.map { ("\($0.sku)@\($0.locationId)", $0) })
        #expect(bySite["\(a)@FC2"]?.fields == [
            FieldDrift(check: .redisVsLevels, field: "damaged", redis: 1, levels: 3, ledger: 1),
            FieldDrift(check: .levelsVsLedger, field: "damaged", redis: 1, levels: 3, ledger: 1),
        ])
        let orphan = try #require(bySite["\(z)@FC7"])
        #expect(!orphan.inLevels && !orphan.inRedis)
        #expect(orphan.fields == [FieldDrift(check: .levelsVsLedger, field: "onHand", redis: nil, levels: nil, ledger: 4)])
        #expect(report.table().contains("levels-ledger"))
        try await f.schema.drop()
    }

    // MARK: Repair

    @Test func afterRedisLossRepairRebuildsWhatThePipelineNeeds() async throws {
        let f = try await ReconcileFixture.create()
        let (a, b) = (f.sku("A"), f.sku("B"))
        let (lost, summary, repaired, tally, queue) = try await blocking {
            try f.seedDay()
            let redis = try f.redis()
            try redis.flushAll()
            let reconciler = try f.reconciler()
            let lost = try reconciler.compare()
            let summary = try reconciler.repair()
            let repaired = try reconciler.compare()
            return (lost, summary, repaired, try redis.send("GET", "inventory:picked:{\(a)}:FC1:O1").int,
                    try redis.send("ZRANGE", "inventory:backorders:{\(b)}:FC1", 0, -1, "WITHSCORES").array?.compactMap(\.string))
        }
        // Every row is missing in Redis.
        #expect(lost.driftedSKULocations == 3)
        #expect(lost.redisKeysScanned == 0)
        #expect(lost.drifts.filter { !$0.isMissingInRedis }.isEmpty)
        // And both waiting lines are missing from their queues.
        #expect(lost.driftedOrderLines == 2)
        #expect(summary.liveHashesWritten == 3)
        #expect(summary.backorderQueuesWritten == 2)      // B at FC1, C at FC3
        #expect(summary.waitingLinesWritten == 2)
        #expect(summary.backorderSequencesWritten == 2)   // B and C
        #expect(!repaired.hasDrift, "\(repaired.table())")
        #expect(repaired.levelsRows == 3 && repaired.redisKeysScanned == 3)
        // Pick tallies are not written back: a cancellation reads PostgreSQL's picks.
        #expect(tally == nil)
        #expect(queue == ["O2|1|8", "1"])

        // The pipeline goes on: a receipt fills the waiting line, a cancellation
        // gives back only what was not picked, and a new line queues behind.
        let (after, levels, rows, seq) = try await blocking {
            try f.produce([
                ReconcileEvents.receiving("\(f.id)-r3", at: "FC1", [(b, 10)]),          // fills O2 (8)
                ReconcileEvents.cancelled("\(f.id)-x1", order: "O1"),                    // 4 allocated, 1 picked: releases 3
                ReconcileEvents.confirmed("\(f.id)-o4", order: "O4", [("1", b, "FC1", 100)]),  // waits, place 2
            ])
            _ = try f.run(untilSeen: 3)
            let seq = try f.db().query("SELECT queue_seq FROM backorders WHERE order_id = 'O4'").first?["queue_seq"].int()
            return (try f.reconciler().compare(), try f.levels(), try f.allocationRows(), seq)
        }
        #expect(!after.hasDrift, "\(after.table())")
        #expect(rows["O2/1"] == "backordered/allocated/0")
        #expect(rows["O1/1"] == "available/cancelled/3")
        #expect(rows["O4/1"] == "backordered/backordered/0")
        #expect(seq == 2)
        #expect(levels["\(a)@FC1"] == [7, 0, 0, 0, 1, 0, 2])
        #expect(levels["\(b)@FC1"] == [15, 8, 0, 0, 0, 0, 0])
        try await f.schema.drop()
    }

    /// A worker killed after its Redis step and before its PostgreSQL transaction
    /// leaves effects (and marks) of events PostgreSQL does not hold. The repair
    /// drops both, so the replay applies them again, once.
    @Test func repairDropsEffectsOfEventsPostgresDoesNotHold() async throws {
        let f = try await ReconcileFixture.create()
        let a = f.sku("A")
        let elsewhere = try await FreshSchema.create(migrated: true)
        let (before, repaired, tallyAfterRepair, after, tally, levels) = try await blocking {
            try f.seedDay()
            // The same events through another group and schema: their effects and
            // marks land in this Redis, their rows elsewhere.
            try f.produce([
                ReconcileEvents.receiving("\(f.id)-e1", at: "FC1", [(a, 5)]),
                ReconcileEvents.pick("\(f.id)-e2", at: "FC1", order: "O9", [(a, 2)]),
            ], topic: 1)
            _ = try f.run(untilSeen: 2, group: "g\(f.id)-elsewhere", topics: [f.topics[1]], schemaURL: elsewhere.url)
            let reconciler = try f.reconciler()
            let before = try reconciler.compare()
            _ = try reconciler.repair()
            let repaired = try reconciler.compare()
            let tallyAfterRepair = try f.redis().send("EXISTS", "inventory:picked:{\(a)}:FC1:O9").int
            // The replay: this group reads them now.
            _ = try f.run(untilSeen: 2)
            return (before, repaired, tallyAfterRepair, try reconciler.compare(),
                    try f.redis().send("HGET", "inventory:picked:{\(a)}:FC1:O9", "p:\(f.id)-e2").string.flatMap { Int64($0) },
                    try f.levels())
        }
        #expect(before.drifts.map { "\($0.sku)@\($0.locationId)" } == ["\(a)@FC1"])
        #expect(before.drifts.first?.fields.first == FieldDrift(check: .redisVsLevels, field: "onHand", redis: 10, levels: 7, ledger: 7))
        #expect(!repaired.hasDrift, "\(repaired.table())")
        #expect(tallyAfterRepair == 0)
        #expect(!after.hasDrift, "\(after.table())")
        #expect(tally == 2)
        #expect(levels["\(a)@FC1"] == [10, 1, 0, 0, 3, 0, 2])
        try await f.schema.drop()
        try await elsewhere.drop()
    }

    @Test func checkoutReservationsAreNotDriftAndSurviveRepair() async throws {
        let f = try await ReconcileFixture.create()
        let (a, q) = (f.sku("A"), f.sku("Q"))
        let (byDefault, strict, summary, hash, kept) = try await blocking {
            try f.seedDay()
            let redis = try f.redis()
            // A checkout holds 4 of A at FC1, and 2 of Q at FC1 (no row in PostgreSQL).
            try redis.send("HINCRBY", "inventory:live:{\(a)}:FC1", "reserved", 4)
            try redis.send("HINCRBY", "inventory:live:{\(a)}:FC1", "available", -4)
            try redis.send("HINCRBY", "inventory:live:{\(q)}:FC1", "reserved", 2)
            try redis.send("HINCRBY", "inventory:live:{\(q)}:FC1", "available", -2)
            let reconciler = try f.reconciler()
            var strictReconciler = reconciler
            strictReconciler.reserved = .worker
            let byDefault = try reconciler.compare()
            let strict = try strictReconciler.compare()
            let summary = try reconciler.repair()
            return (byDefault, strict, summary,
                    try redis.send("HMGET", "inventory:live:{\(a)}:FC1", "onHand", "allocated", "reserved", "available").array?.compactMap(\.int),
                    try redis.send("HMGET", "inventory:live:{\(q)}:FC1", "reserved", "available").array?.compactMap(\.int))
        }
        #expect(!byDefault.hasDrift, "\(byDefault.table())")
        #expect(strict.reserved == .worker)
        #expect(strict.driftedSKULocations == 2)
        #expect(strict.drifts.first { $0.sku == a }?.fields == [
            FieldDrift(check: .redisVsLevels, field: "reserved", redis: 4, levels: 0, ledger: 0),
            FieldDrift(check: .redisVsLevels, field: "available", redis: 0, levels: 4, ledger: 4),
        ])
        #expect(summary.liveHashesKeptForReservations == 1)
        #expect(hash == [7, 3, 4, 0])
        #expect(kept == [2, -2])
        try await f.schema.drop()
    }

    /// Many SKU-locations, through chunks far smaller than them: nothing is lost at
    /// a chunk's edge, and the time stays reasonable.
    @Test func manySKULocationsInSmallChunks() async throws {
        let f = try await ReconcileFixture.create()
        let count = 20_000
        let (clean, lost, summary, repaired, elapsed) = try await blocking {
            let db = try f.db()
            try db.query("""
                INSERT INTO inventory_events (event_id, event_type, occurred_at, payload, payload_digest, source_topic, source_partition, source_offset)
                VALUES (\("\(f.id)-bulk"), 'RECEIVING_COMPLETE', now(), '{}', '\\x00', 't', 0, 0)
                """)
            try db.query("""
                INSERT INTO inventory_levels (sku, location_id, on_hand)
                SELECT 'S' || lpad(i::text, 6, '0'), 'FC' || (i % 7), i FROM generate_series(1, \(count)) AS i
                """)
            try db.query("""
                INSERT INTO inventory_transactions (event_id, entry_no, sku, location_id, event_type, d_on_hand)
                SELECT \("\(f.id)-bulk"), i, 'S' || lpad(i::text, 6, '0'), 'FC' || (i % 7), 'RECEIVING_COMPLETE', i
                FROM generate_series(1, \(count)) AS i
                """)
            // Queue lines of one SKU and location, spanning several write chunks.
            try db.query("""
                INSERT INTO backorders (order_id, line_id, sku, location_id, quantity, queue_seq, status, queued_by)
                SELECT 'Q' || i, '1', 'S000007', 'FC0', i, i, 'waiting', \("\(f.id)-bulk") FROM generate_series(1, 120) AS i
                """)
            var reconciler = try f.reconciler()
            reconciler.readChunk = 700
            reconciler.writeChunk = 50
            _ = try reconciler.repair()
            let clean = try reconciler.compare()
            try f.redis().flushAll()
            let lost = try reconciler.compare(maxListed: 10)
            let start = ContinuousClock.now
            let summary = try reconciler.repair()
            let repaired = try reconciler.compare()
            return (clean, lost, summary, repaired, ContinuousClock.now - start)
        }
        #expect(!clean.hasDrift)
        #expect(clean.levelsRows == count && clean.redisKeysScanned == count)
        #expect(lost.driftedSKULocations == count)
        #expect(lost.drifts.map(\.sku) == (1...10).map { "S" + String(repeating: "0", count: 6 - String($0).count) + String($0) })
        #expect(summary.liveHashesWritten == count)
        #expect(summary.waitingLinesWritten == 120)
        #expect(summary.backorderQueuesWritten == 1)
        #expect(!repaired.hasDrift)
        #expect(elapsed < .seconds(60), "repair and compare of \(count) SKU-locations took \(elapsed)")
        let members = try await blocking { try f.redis().send("ZCARD", "inventory:backorders:{S000007}:FC0").int }
        #expect(members == 120)
        try await f.schema.drop()
    }
}

// MARK: - Fixture

/// What one test needs, apart from the other tests: its own topics, consumer group,
/// PostgreSQL schema and SKU prefix, and this suite's Redis database.
struct ReconcileFixture: Sendable {
    static let redisDatabase = 11
    static let logger = Logger(label: "wms.test.reconcile")
    let id: String
    let schema: FreshSchema
    /// The group reads both; the second is for events another group applies first.
    let topics: [String]
    let group: String

    static func create() async throws -> ReconcileFixture {
        let id = String(UUID().uuidString.prefix(8).lowercased())
        let fixture = ReconcileFixture(id: id, schema: try await FreshSchema.create(migrated: true),
                                       topics: ["t\(id).wms.in0", "t\(id).wms.in1"], group: "g\(id)")
        _ = try await blocking { try fixture.redis().flushAll() }
        return fixture
    }

    func sku(_ name: String) -> String { "T\(id)-\(name)" }

    static var redisURL: RedisURL {
        get throws {
            try RedisURL(TestEnvironment.redisURL(ownDatabase: redisDatabase))
        }
    }

    func redis() throws -> RedisClient { try RedisClient(url: try Self.redisURL) }
    func db() throws -> PostgresConnection { try PostgresConnection(url: schema.url) }
    func reconciler() throws -> Reconciler { Reconciler(hot: try redis(), postgres: try db(), displayCache: try redis()) }

    func produce(_ values: [String], topic: Int = 0) throws {
        let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: TestEnvironment.kafkaBrokers), logger: Self.logger)
        try producer.deliver(values.map { KafkaOutboundMessage(topic: topics[topic], partition: 0, value: Array($0.utf8)) })
    }

    /// Runs the real pipeline until it has seen `messages` messages (applied,
    /// duplicate or dead-lettered), or a minute passed.
    @discardableResult
    func run(untilSeen messages: Int, group: String? = nil, topics: [String]? = nil, schemaURL: String? = nil) throws -> BatchReport {
        var settings = PipelineSettings(topics: topics ?? self.topics)
        settings.alertsTopic = "t\(id).alerts"
        settings.deadLetterTopic = "t\(id).dlq"
        settings.allocationsTopic = "t\(id).allocations"
        settings.pollTimeout = .milliseconds(50)
        settings.maxRetryDelay = .seconds(2)
        var consumer = KafkaConfig(bootstrapServers: TestEnvironment.kafkaBrokers, properties: [
            "group.id": group ?? self.group, "session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
        ])
        consumer.clientID = "wms-test"
        let pipeline = Pipeline(settings: settings, connections: Pipeline.Connections(
            consumer: try KafkaConsumer(config: consumer, logger: Self.logger),
            producer: try KafkaProducer(config: KafkaConfig(bootstrapServers: TestEnvironment.kafkaBrokers), logger: Self.logger),
            hot: try redis(), displayCache: try redis(), postgres: try PostgresConnection(url: schemaURL ?? schema.url),
            commitHot: try redis(), commitPostgres: try PostgresConnection(url: schemaURL ?? schema.url)),
            logger: Self.logger)
        let deadline = ContinuousClock.now + .seconds(60)
        try pipeline.run(shouldStop: {
            let totals = pipeline.totals
            return totals.appliedCount + totals.duplicates + totals.deadLetterCount >= messages || ContinuousClock.now >= deadline
        }, sleep: { Thread.sleep(forTimeInterval: $0 / .seconds(1)) })
        let totals = pipeline.totals
        guard totals.appliedCount + totals.duplicates + totals.deadLetterCount >= messages else {
            throw FixtureError("the pipeline saw \(totals.messages) of \(messages) messages in a minute")
        }
        return totals
    }

    /// A warehouse morning. Afterwards (onHand allocated reserved damaged picked inTransitIn inTransitOut):
    /// A@FC1 7 3 0 0 1 0 2; B@FC1 5 0 0 0 0 0 0; A@FC2 2 0 0 1 0 2 0; order O2 (8 of B at FC1)
    /// and O3 (2 of C at FC3, where C never was) wait; O1 has 1 of its 4 picked.
    func seedDay() throws {
        let (a, b, c) = (sku("A"), sku("B"), sku("C"))
        try produce([
            ReconcileEvents.receiving("\(id)-r1", at: "FC1", [(a, 10), (b, 5)]),
            ReconcileEvents.receiving("\(id)-r2", at: "FC2", [(a, 3)]),
            ReconcileEvents.confirmed("\(id)-o1", order: "O1", [("1", a, "FC1", 4)]),
            ReconcileEvents.pick("\(id)-p1", at: "FC1", order: "O1", [(a, 1)]),
            ReconcileEvents.confirmed("\(id)-o2", order: "O2", [("1", b, "FC1", 8)]),
            ReconcileEvents.confirmed("\(id)-o3", order: "O3", [("1", c, "FC3", 2)]),
            ReconcileEvents.transferShipped("\(id)-t1", from: "FC1", to: "FC2", [(a, 2)]),
            ReconcileEvents.damage("\(id)-d1", at: "FC2", [(a, 1)]),
            ReconcileEvents.cycleCount("\(id)-c1", at: "FC2", sku: a, expected: 2, actual: 2),
        ])
        try run(untilSeen: 9)
    }

    /// `inventory_levels` per "SKU@LOCATION", the buckets in contract order.
    func levels() throws -> [String: [Int64]] {
        var levels: [String: [Int64]] = [:]
        for row in try db().query("""
            SELECT sku, location_id, on_hand, allocated, reserved, damaged, picked, in_transit_in, in_transit_out FROM inventory_levels
            """).rows {
            levels["\(try row[0].string())@\(try row[1].string())"] = try (2...8).map { try row[$0].int() }
        }
        return levels
    }

    /// "ORDER/LINE" -> "decision/status/released".
    func allocationRows() throws -> [String: String] {
        var rows: [String: String] = [:]
        for row in try db().query("SELECT order_id, line_id, decision, status, released FROM allocations").rows {
            rows["\(try row[0].string())/\(try row[1].string())"] = "\(try row[2].string())/\(try row[3].string())/\(try row[4].int())"
        }
        return rows
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Events as the WMS and the order service send them.
enum ReconcileEvents {
    static func items(_ items: [(String, Int)]) -> String {
        "[" + items.map { #"{"sku":"\#($0.0)","quantity":\#($0.1)}"# }.joined(separator: ",") + "]"
    }

    static func wms(_ id: String, _ type: String, at location: String, _ extra: String) -> String {
        #"{"eventId":"\#(id)","eventType":"\#(type)","timestamp":"2026-11-27T08:00:00.000Z","locationId":"\#(location)","source":"wms",\#(extra)}"#
    }

    static func receiving(_ id: String, at location: String, _ lines: [(String, Int)]) -> String {
        wms(id, "RECEIVING_COMPLETE", at: location, #""purchaseOrderId":"PO-1","items":\#(items(lines))"#)
    }

    static func pick(_ id: String, at location: String, order: String, _ lines: [(String, Int)]) -> String {
        wms(id, "PICK_COMPLETE", at: location, #""orderId":"\#(order)","items":\#(items(lines))"#)
    }

    static func damage(_ id: String, at location: String, _ lines: [(String, Int)]) -> String {
        wms(id, "DAMAGE_REPORT", at: location, #""reason":"forklift","items":\#(items(lines))"#)
    }

    static func transferShipped(_ id: String, from: String, to: String, _ lines: [(String, Int)]) -> String {
        wms(id, "TRANSFER_SHIPPED", at: from, #""transferId":"TR-\#(id)","toLocationId":"\#(to)","items":\#(items(lines))"#)
    }

    static func cycleCount(_ id: String, at location: String, sku: String, expected: Int, actual: Int) -> String {
        wms(id, "CYCLE_COUNT_ADJUSTMENT", at: location,
            #""sku":"\#(sku)","expectedCount":\#(expected),"actualCount":\#(actual),"reason":"annual count""#)
    }

    static func confirmed(_ id: String, order: String, _ lines: [(lineId: String, sku: String, location: String, quantity: Int)]) -> String {
        let body = lines.map { #"{"lineId":"\#($0.lineId)","sku":"\#($0.sku)","locationId":"\#($0.location)","quantity":\#($0.quantity)}"# }
            .joined(separator: ",")
        return #"{"eventId":"\#(id)","eventType":"ORDER_CONFIRMED","timestamp":"2026-11-27T09:00:00Z","source":"order_service","orderId":"\#(order)","lines":[\#(body)]}"#
    }

    static func cancelled(_ id: String, order: String) -> String {
        #"{"eventId":"\#(id)","eventType":"ORDER_CANCELLED","timestamp":"2026-11-27T09:30:00Z","source":"order_service","orderId":"\#(order)"}"#
    }
}
