import Foundation
import Kafka
import Redis
import Testing
import TestSupport
import WMSDomain
import Postgres
import WMSPipeline
import WMSStore

/// Section 2's order events and section 5's allocation messages.
@Suite struct PipelineAllocationTests {
    @Test func confirmationWithAndWithoutAReservation() async throws {
        let f = try await PipelineFixture.create()
        let (a, b) = (f.sku("A"), f.sku("B"))
        let outcome = try await blocking {
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(a, 10), (b, 10)])], partition: 0)
            _ = try f.run(untilSeen: 1)
            // A checkout holds 4 of A: the checkout service writes Redis itself.
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            try redis.send("HSET", "inventory:reservation:{\(a)}:RES-1", "status", "active", "quantity", "4", "locationId", "FC1")
            try redis.send("HINCRBY", "inventory:live:{\(a)}:FC1", "reserved", 4)
            try redis.send("HINCRBY", "inventory:live:{\(a)}:FC1", "available", -4)
            try f.produce([OrderEvents.confirmed("\(f.id)-o1", order: "O1", [("L1", a, "FC1", 4, "RES-1"), ("L2", b, "FC1", 3, nil)])], partition: 0)
            _ = try f.run(untilSeen: 1)
            let reservation = try redis.send("HMGET", "inventory:reservation:{\(a)}:RES-1", "status", "orderId").array?.compactMap(\.string)
            return (try f.redisLevels(["\(a)@FC1", "\(b)@FC1"]), reservation, try f.allocationRows(), try f.allocationMessages(expecting: 1))
        }
        let (levels, reservation, rows, messages) = outcome
        // onHand allocated reserved damaged picked inTransitIn inTransitOut available
        #expect(levels["\(a)@FC1"] == [10, 4, 0, 0, 0, 0, 0, 6])
        #expect(levels["\(b)@FC1"] == [10, 3, 0, 0, 0, 0, 0, 7])
        #expect(reservation == ["confirmed", "O1"])
        #expect(rows == ["O1/L1": "reservation/allocated/0", "O1/L2": "available/allocated/0"])
        let message = try #require(messages.first)
        #expect(messages.count == 1)
        #expect(message["type"]?.stringValue == "ALLOCATION")
        #expect(message["messageId"]?.stringValue == "allocation:\(f.id)-o1|O1|FC1")
        #expect(message["causedBy"]?.stringValue == "\(f.id)-o1")
        #expect(message["lines"]?.arrayValue?.map { "\($0["lineId"]!.stringValue!)=\($0["quantity"]!.integerValue!)" } == ["L1=4", "L2=3"])
        // PostgreSQL moved the same way (reserved aside: the checkout service wrote it to Redis only).
        let postgres = try await blocking { try f.postgresLevels() }
        #expect(postgres["\(a)@FC1"].map { [$0[0], $0[1]] } == [10, 4])
        try await f.schema.drop()
    }

    @Test(arguments: [BackorderPolicy.strictFIFO, .fillWhatFits])
    func backordersFillOldestFirstUnderEachPolicy(policy: BackorderPolicy) async throws {
        var fixture = try await PipelineFixture.create()
        fixture.backorderPolicy = policy
        let f = fixture
        let sku = f.sku("S")
        let outcome = try await blocking {
            // Nothing in stock: three lines queue up, oldest first.
            try f.produce([
                OrderEvents.confirmed("\(f.id)-oA", order: "A", [("1", sku, "FC1", 5, nil)]),
                OrderEvents.confirmed("\(f.id)-oB", order: "B", [("1", sku, "FC1", 2, nil)]),
                OrderEvents.confirmed("\(f.id)-oC", order: "C", [("1", sku, "FC1", 3, nil)]),
                // 4 arrive: A (5) does not fit. Strict FIFO: B waits behind A. Fill-what-fits: B goes.
                WMSEvents.receiving("\(f.id)-r1", at: "FC1", [(sku, 4)]),
                // 4 more.
                WMSEvents.receiving("\(f.id)-r2", at: "FC1", [(sku, 4)]),
            ], partition: 0)
            _ = try f.run(untilSeen: 5)
            return (try f.allocationRows(), try f.allocationMessages(expecting: 2), try f.redisLevels(["\(sku)@FC1"]),
                    try f.postgresLevels())
        }
        let (rows, messages, redis, postgres) = outcome
        let filledBy = Dictionary(uniqueKeysWithValues: messages.map { ($0["orderId"]!.stringValue!, $0["causedBy"]!.stringValue!) })
        switch policy {
        case .strictFIFO:
            // r1: nothing (A blocks). r2: 8 available, A (5) then B (2); C (3) waits behind.
            #expect(filledBy == ["A": "\(f.id)-r2", "B": "\(f.id)-r2"])
            #expect(rows["C/1"] == "backordered/backordered/0")
            #expect(redis["\(sku)@FC1"] == [8, 7, 0, 0, 0, 0, 0, 1])
        case .fillWhatFits:
            // r1: B (2) fits past A; 2 left, C (3) does not. r2: 6 available, A (5); C still waits.
            #expect(filledBy == ["B": "\(f.id)-r1", "A": "\(f.id)-r2"])
            #expect(rows["C/1"] == "backordered/backordered/0")
            #expect(redis["\(sku)@FC1"] == [8, 7, 0, 0, 0, 0, 0, 1])
        }
        #expect(rows["A/1"] == "backordered/allocated/0")
        #expect(rows["B/1"] == "backordered/allocated/0")
        #expect(postgres["\(sku)@FC1"] == [8, 7, 0, 0, 0, 0, 0])
        try await f.schema.drop()
    }

    /// A line queued by an earlier batch: the receipt's script call does not name
    /// its key until the script asks for it (Redis Cluster: a script touches only
    /// its KEYS). Filled as ever, and released after the commit like any line.
    @Test func aLineQueuedByAnEarlierBatchIsFilledWhenStockArrives() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let outcome = try await blocking {
            try f.produce([OrderEvents.confirmed("\(f.id)-o", order: "O", [("1", sku, "FC1", 3, nil)])], partition: 0)
            _ = try f.run(untilSeen: 1)
            let queued = try f.allocationRows()
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)])], partition: 0)
            _ = try f.run(untilSeen: 1)
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            return (queued, try f.allocationRows(), try f.allocationMessages(expecting: 1), try f.redisLevels(["\(sku)@FC1"]),
                    try f.postgresLevels(), try redis.send("ZCARD", RedisKeys.backorders(sku: sku, location: "FC1")).int,
                    try redis.send("PTTL", RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1")).int ?? 0)
        }
        let (queued, rows, messages, redis, postgres, queueLength, lineTTL) = outcome
        #expect(queued == ["O/1": "backordered/backordered/0"])
        #expect(rows == ["O/1": "backordered/allocated/0"])
        #expect(messages.map { $0["messageId"]?.stringValue ?? "" } == ["allocation:\(f.id)-r|O|FC1"])
        #expect(messages.first?["causedBy"]?.stringValue == "\(f.id)-r")
        #expect(redis["\(sku)@FC1"] == [10, 3, 0, 0, 0, 0, 0, 7])
        #expect(postgres["\(sku)@FC1"] == [10, 3, 0, 0, 0, 0, 0])
        #expect(queueLength == 0)
        // Released after the commit: the grace runs.
        #expect(lineTTL > 0)
        try await f.schema.drop()
    }

    @Test func cancellationReleasesWhatIsNotPickedAndDropsBackorders() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let outcome = try await blocking {
            try f.produce([
                WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 20)]),
                OrderEvents.confirmed("\(f.id)-o1", order: "NOPICK", [("1", sku, "FC1", 5, nil)]),
                OrderEvents.confirmed("\(f.id)-o2", order: "PARTIAL", [("1", sku, "FC1", 5, nil)]),
                OrderEvents.confirmed("\(f.id)-o3", order: "FULL", [("1", sku, "FC1", 5, nil)]),
                OrderEvents.confirmed("\(f.id)-o4", order: "QUEUED", [("1", sku, "FC1", 9, nil)]),
                WMSEvents.pick("\(f.id)-p2", at: "FC1", order: "PARTIAL", [(sku, 2)]),
                WMSEvents.pick("\(f.id)-p3", at: "FC1", order: "FULL", [(sku, 5)]),
                OrderEvents.cancelled("\(f.id)-c1", order: "NOPICK"),
                OrderEvents.cancelled("\(f.id)-c2", order: "PARTIAL", lines: ["1"]),
                OrderEvents.cancelled("\(f.id)-c3", order: "FULL"),
                OrderEvents.cancelled("\(f.id)-c4", order: "QUEUED"),
                // Stock for the dropped line: it must not be allocated any more.
                WMSEvents.receiving("\(f.id)-r2", at: "FC1", [(sku, 30)]),
            ], partition: 0)
            _ = try f.run(untilSeen: 12)
            return (try f.allocationRows(), try f.allocationMessages(expecting: 5), try f.redisLevels(["\(sku)@FC1"]), try f.postgresLevels())
        }
        let (rows, messages, redis, postgres) = outcome
        #expect(rows == ["NOPICK/1": "available/cancelled/5", "PARTIAL/1": "available/cancelled/3",
                         "FULL/1": "available/cancelled/0", "QUEUED/1": "backordered/cancelled/0"])
        let cancellations = messages.filter { $0["type"]?.stringValue == "ALLOCATION_CANCELLED" }
        #expect(Set(cancellations.map { "\($0["orderId"]!.stringValue!):\($0["lines"]![0]!["quantity"]!.integerValue!)" }) == ["NOPICK:5", "PARTIAL:3"])
        #expect(messages.filter { $0["type"]?.stringValue == "ALLOCATION" }.count == 3)
        // onHand 20 - 7 picked + 30; allocated 15 - 7 picked - 8 released = 0.
        #expect(redis["\(sku)@FC1"] == [43, 0, 0, 0, 7, 0, 0, 43])
        #expect(postgres["\(sku)@FC1"] == [43, 0, 0, 0, 7, 0, 0])
        try await f.schema.drop()
    }

    /// Section 5: a confirmation and its cancellation in one batch. Their messages
    /// share a partition (keyed by location), so the WMS sees them in publishing
    /// order: the ALLOCATION first.
    @Test func anAllocationIsPublishedBeforeItsCancellationFromOneBatch() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let outcome = try await blocking {
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)])], partition: 0)
            _ = try f.run(untilSeen: 1)
            try f.produce([OrderEvents.confirmed("\(f.id)-o", order: "O", [("1", sku, "FC1", 3, nil)]),
                           OrderEvents.cancelled("\(f.id)-c", order: "O")], partition: 0)
            let report = try f.run(untilSeen: 2)
            return (report, try f.allocationMessages(expecting: 2))
        }
        let (report, messages) = outcome
        // Both in one batch: the case where their outbox rows are written together.
        #expect(report.batches == 1)
        #expect(messages.map { $0["messageId"]?.stringValue ?? "" } == ["allocation:\(f.id)-o|O|FC1", "allocation-cancelled:\(f.id)-c|O|FC1"])
        try await f.schema.drop()
    }

    @Test func twoOrdersRacingForTheLastUnitsAcrossTwoWorkers() async throws {
        var fixture = try await PipelineFixture.create()
        fixture.maxBatchSize = 1
        let f = fixture
        let sku = f.sku("S")
        try await blocking {
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 5)])], partition: 0)
            // Wait until the stock is in, so that both orders find the same 5 units.
            _ = try f.run(untilSeen: 1)
            try f.produce([OrderEvents.confirmed("\(f.id)-x", order: "X", [("1", sku, "FC1", 5, nil)])], partition: 1)
            try f.produce([OrderEvents.confirmed("\(f.id)-y", order: "Y", [("1", sku, "FC1", 5, nil)])], partition: 2)
        }
        async let first = blocking("first") { try PipelineGroupTests.runUntilEventCount(f, 3, timeout: .seconds(60)) }
        async let second = blocking("second") { try PipelineGroupTests.runUntilEventCount(f, 3, timeout: .seconds(60)) }
        let done = try await [first, second]
        let rows = try await blocking { try f.allocationRows() }
        #expect(done.contains(true))
        #expect(Set(rows.values) == ["available/allocated/0", "backordered/backordered/0"])
        let redis = try await blocking { try f.redisLevels(["\(sku)@FC1"]) }
        #expect(redis["\(sku)@FC1"] == [5, 5, 0, 0, 0, 0, 0, 0])
        try await f.schema.drop()
    }

    @Test func replaysAndResendsNeverDecideTwice() async throws {
        let f = try await PipelineFixture.create(topics: 2)
        let sku = f.sku("S")
        let confirm = OrderEvents.confirmed("\(f.id)-o", order: "O", [("1", sku, "FC1", 3, nil), ("2", sku, "FC1", 50, nil)])
        let outcome = try await blocking {
            // The stock first: topics are read in no set order.
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)])], partition: 0)
            _ = try f.run(untilSeen: 1)
            try f.produce([confirm, confirm], partition: 0)
            // The same order line confirmed again by another event: never re-decided.
            try f.produce([OrderEvents.confirmed("\(f.id)-o-again", order: "O", [("1", sku, "FC1", 3, nil)]), confirm], topic: 1, partition: 0)
            _ = try f.run(untilSeen: 4)
            _ = try f.run(untilSeen: 5, group: "replay-\(UUID().uuidString.prefix(8))")
            return (try f.allocationRows(), try f.readAll(f.allocationsTopic, expecting: 1), try f.redisLevels(["\(sku)@FC1"]))
        }
        let (rows, messages, redis) = outcome
        #expect(rows == ["O/1": "available/allocated/0", "O/2": "backordered/backordered/0"])
        #expect(messages.count == 1)
        #expect(redis["\(sku)@FC1"] == [10, 3, 0, 0, 0, 0, 0, 7])
        try await f.schema.drop()
    }

    /// Two workers: one confirms an order while the other records its cancellation
    /// without seeing the confirmation (not yet committed). Whichever commits
    /// second finds the line still allocated under a cancellation; the worker
    /// gives it back, even with nothing more to read.
    @Test func aCancellationAndAConfirmationSideBySideStillReleaseTheLine() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let outcome = try await blocking {
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)]),
                           OrderEvents.confirmed("\(f.id)-o", order: "O", [("1", sku, "FC1", 3, nil)])], partition: 0)
            _ = try f.run(untilSeen: 2)
            // The other worker's transaction, as it committed: the cancellation, and no lines seen.
            var other = BatchRecords()
            other.events = [EventRecord(eventId: "\(f.id)-c", eventType: "ORDER_CANCELLED", locationId: nil, occurredAtMs: 0,
                                        canonicalJSON: "{}", digest: String(repeating: "0", count: 64), sourceTopic: f.topics[0],
                                        sourcePartition: 1, sourceOffset: 0)]
            other.orderCancellations = [OrderCancellationRecord(orderId: "O", lineId: "*", eventId: "\(f.id)-c")]
            try InventoryStore(db: try PostgresConnection(url: f.schema.url)).writeOnStandingState(other)
            let pending = try f.query("SELECT count(*) AS n FROM pending_cancellations").first!["n"].int()
            // The worker releases it, with no message to read: its idle batches do.
            let db = try PostgresConnection(url: f.schema.url)
            let deadline = ContinuousClock.now + .seconds(60)
            _ = try f.run { _ in
                (try? db.query("SELECT count(*) AS n FROM pending_cancellations").first?["n"].int()) == 0 || ContinuousClock.now >= deadline
            }
            return (pending, try f.query("SELECT count(*) AS n FROM pending_cancellations").first!["n"].int(), try f.allocationRows(),
                    try f.redisLevels(["\(sku)@FC1"]), try f.postgresLevels(), try f.allocationMessages(expecting: 2))
        }
        let (pendingBefore, pendingAfter, rows, redis, postgres, messages) = outcome
        #expect(pendingBefore == 1)
        #expect(pendingAfter == 0)
        #expect(rows == ["O/1": "available/cancelled/3"])
        #expect(redis["\(sku)@FC1"] == [10, 0, 0, 0, 0, 0, 0, 10])
        #expect(postgres["\(sku)@FC1"] == [10, 0, 0, 0, 0, 0, 0])
        #expect(Set(messages.compactMap { $0["messageId"]?.stringValue }) == [
            "allocation:\(f.id)-o|O|FC1", "allocation-cancelled-late:\(f.id)-c|O|1",
        ])
        try await f.schema.drop()
    }

    /// One message per batch: each batch is prepared while the one before it is
    /// still being written on the commit lane. A cancellation right behind its
    /// order's confirmation, and a resend right behind its original, must come
    /// out as they would in one batch: the line released at once (not through the
    /// late path of two workers side by side), the resend a duplicate.
    @Test func batchesPreparedWhileTheOneBeforeIsWrittenSeeItsDecisions() async throws {
        var fixture = try await PipelineFixture.create()
        fixture.maxBatchSize = 1
        let f = fixture
        let sku = f.sku("S")
        let confirmation = OrderEvents.confirmed("\(f.id)-o", order: "O", [("1", sku, "FC1", 3, nil)])
        let outcome = try await blocking {
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)]), confirmation, confirmation,
                           OrderEvents.cancelled("\(f.id)-c", order: "O"),
                           OrderEvents.confirmed("\(f.id)-p", order: "P", [("1", sku, "FC1", 2, nil)])], partition: 0)
            let report = try f.run(untilSeen: 5)
            return (report, try f.query("SELECT count(*) AS n FROM pending_cancellations").first!["n"].int(), try f.allocationRows(),
                    try f.redisLevels(["\(sku)@FC1"]), try f.postgresLevels(), try f.allocationMessages(expecting: 3))
        }
        let (report, pending, rows, redis, postgres, messages) = outcome
        #expect(report.appliedCount == 4)
        #expect(report.duplicates == 1)
        #expect(report.decisions["cancelled late"] == nil)
        #expect(pending == 0)
        #expect(rows == ["O/1": "available/cancelled/3", "P/1": "available/allocated/0"])
        #expect(redis["\(sku)@FC1"] == [10, 2, 0, 0, 0, 0, 0, 8])
        #expect(postgres["\(sku)@FC1"] == [10, 2, 0, 0, 0, 0, 0])
        #expect(messages.compactMap { $0["messageId"]?.stringValue } == [
            "allocation:\(f.id)-o|O|FC1", "allocation-cancelled:\(f.id)-c|O|FC1", "allocation:\(f.id)-p|P|FC1",
        ])
        try await f.schema.drop()
    }
}
