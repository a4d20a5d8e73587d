import Foundation
import Kafka
import Postgres
import Redis
import Testing
import TestSupport
import WMSDomain
import WMSPipeline

/// Section 4: outcomes that must not depend on how old the history is, nor on how
/// Redis keys of different events, orders and workers interleave; and Redis memory
/// that does not grow with history.
@Suite struct PipelineHistoryTests {
    /// Every key of one SKU in the hot store (the test's SKUs are its own).
    static func keys(of sku: String) throws -> [String] { try keys(matching: "inventory:*{\(sku)}*") }

    /// Every key of the events whose ids start with `prefix` (their claims).
    static func eventKeys(_ prefix: String) throws -> [String] { try keys(matching: "inventory:*{\(prefix)*}") }

    static func keys(matching pattern: String) throws -> [String] {
        try RedisClient(url: try RedisURL(TestEnvironment.redisURL)).keys(matching: pattern)
    }

    /// What expires after `days` of quiet: every key of the SKU but its live hash,
    /// queues and sequence (what the old 7-day expiry took away).
    static func expireHistory(of sku: String) throws {
        let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
        for key in try keys(of: sku) where key.hasPrefix("inventory:line:") || key.hasPrefix("inventory:picked:")
            || key.hasPrefix("inventory:applied:") {
            try redis.send("DEL", key)
        }
    }

    /// Defect: a cancellation long after a pick, once Redis no longer held the pick
    /// tally or the line, gave back units already picked.
    @Test func aCancellationAfterRedisForgotThePickReleasesOnlyWhatWasNotPicked() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let outcome = try await blocking {
            try f.produce([
                WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)]),
                OrderEvents.confirmed("\(f.id)-o", order: "O1", [("L1", sku, "FC1", 4, nil), ("L2", sku, "FC1", 2, nil)]),
                WMSEvents.pick("\(f.id)-p", at: "FC1", order: "O1", [(sku, 4)]),
                WMSEvents.ship("\(f.id)-s", at: "FC1", order: "O1", [(sku, 4)]),
            ], partition: 0)
            _ = try f.run(untilSeen: 4)
            try Self.expireHistory(of: sku)
            try f.produce([OrderEvents.cancelled("\(f.id)-c", order: "O1")], partition: 0)
            _ = try f.run(untilSeen: 1)
            return (try f.postgresLevels(), try f.redisLevels(["\(sku)@FC1"]), try f.allocationRows(),
                    try f.allocationMessages(expecting: 2))
        }
        let (postgres, redis, rows, messages) = outcome
        // L1 (4) was picked whole: nothing of it comes back; L2 (2) is released.
        #expect(postgres["\(sku)@FC1"] == [6, 0, 0, 0, 0, 0, 0])
        #expect(redis["\(sku)@FC1"] == [6, 0, 0, 0, 0, 0, 0, 6])
        #expect(rows == ["O1/L1": "available/cancelled/0", "O1/L2": "available/cancelled/2"])
        let cancelled = messages.filter { $0["type"]?.stringValue == "ALLOCATION_CANCELLED" }
        #expect(cancelled.count == 1)
        #expect(cancelled.first?["lines"]?.arrayValue?.map { "\($0["lineId"]!.stringValue!)=\($0["quantity"]!.integerValue!)" } == ["L2=2"])
        try await f.schema.drop()
    }

    /// Defect: one order line confirmed twice with different SKUs, in one batch and
    /// across batches. The line is decided once; the second confirmation is a bad
    /// event as a whole; one that repeats the line as it was changes nothing.
    @Test(arguments: [true, false])
    func anOrderLineConfirmedAgainWithAnotherSKUIsABadEvent(inStock: Bool) async throws {
        let f = try await PipelineFixture.create()
        let (a, b) = (f.sku("A"), f.sku("B"))
        let outcome = try await blocking {
            if inStock {
                try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(a, 10), (b, 10)])], partition: 0)
                _ = try f.run(untilSeen: 1)
            }
            try f.produce([
                OrderEvents.confirmed("\(f.id)-o1", order: "O1", [("L1", a, "FC1", 3, nil)]),
                OrderEvents.confirmed("\(f.id)-o2", order: "O1", [("L1", b, "FC1", 3, nil)]),
                // The same line as first confirmed: nothing changes, nothing is dead-lettered.
                OrderEvents.confirmed("\(f.id)-o3", order: "O1", [("L1", a, "FC1", 3, nil)]),
            ], partition: 0)
            let first = try f.run(untilSeen: 3)
            // Again in a later batch, once PostgreSQL holds the line: another quantity.
            try f.produce([OrderEvents.confirmed("\(f.id)-o4", order: "O1", [("L1", a, "FC1", 5, nil), ("L2", b, "FC1", 1, nil)])],
                          partition: 0)
            let second = try f.run(untilSeen: 1)
            try f.produce([OrderEvents.cancelled("\(f.id)-c", order: "O1")], partition: 0)
            _ = try f.run(untilSeen: 1)
            return (first, second, try f.readAll(f.deadLetterTopic, expecting: 2), try f.allocationRows(),
                    try f.redisLevels(["\(a)@FC1", "\(b)@FC1"]), try f.postgresLevels(),
                    try f.allocationMessages(expecting: inStock ? 2 : 0))
        }
        let (first, second, dead, rows, redis, postgres, messages) = outcome
        #expect(first.deadLetterCount == 1)
        #expect(second.deadLetterCount == 1)
        #expect(dead.map { String(decoding: $0.header("wms.error.code") ?? [], as: UTF8.self) } == ["INVALID_FIELD", "INVALID_FIELD"])
        #expect(Set(dead.compactMap { try? JSONValue.parse($0.value)["eventId"]?.stringValue }) == ["\(f.id)-o2", "\(f.id)-o4"])
        #expect(rows == ["O1/L1": inStock ? "available/cancelled/3" : "backordered/cancelled/0"])
        // Everything given back; B never moved.
        #expect(redis["\(a)@FC1"] == (inStock ? [10, 0, 0, 0, 0, 0, 0, 10] : [0, 0, 0, 0, 0, 0, 0, 0]))
        #expect(redis["\(b)@FC1"] == (inStock ? [10, 0, 0, 0, 0, 0, 0, 10] : [-999_999, -999_999, -999_999, -999_999, -999_999, -999_999, -999_999, -999_999]))
        #expect(postgres["\(a)@FC1"].map { $0[1] } == (inStock ? 0 : nil))
        #expect(messages.map { $0["type"]?.stringValue ?? "" } == (inStock ? ["ALLOCATION", "ALLOCATION_CANCELLED"] : []))
        try await f.schema.drop()
    }

    /// Defect: messageIds built by joining ids that may contain `:` collided, and the
    /// outbox kept one of two different allocations.
    @Test func allocationsOfIdsWithColonsKeepDistinctMessageIds() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let outcome = try await blocking {
            try f.produce([
                WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)]),
                OrderEvents.confirmed("\(f.id)-e:1", order: "A", [("1", sku, "FC1", 1, nil)]),
                OrderEvents.confirmed("\(f.id)-e", order: "1:A", [("1", sku, "FC1", 1, nil)]),
            ], partition: 0)
            _ = try f.run(untilSeen: 3)
            return try f.allocationMessages(expecting: 2)
        }
        #expect(Set(outcome.compactMap { $0["orderId"]?.stringValue }) == ["A", "1:A"])
        #expect(Set(outcome.compactMap { $0["messageId"]?.stringValue }).count == 2)
        try await f.schema.drop()
    }

    /// Defect: a cancellation handled again after a crash past PostgreSQL (now a
    /// duplicate) did not invalidate its SKUs' display-cache entries.
    @Test func aCancellationSeenAgainInvalidatesItsSKUsDisplayEntries() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let display = "inventory:display:{\(sku)}"
        let survived = try await blocking {
            try f.produce([
                WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)]),
                OrderEvents.confirmed("\(f.id)-o", order: "O1", [("1", sku, "FC1", 4, nil)]),
                OrderEvents.cancelled("\(f.id)-c", order: "O1"),
            ], partition: 0)
            _ = try f.run(untilSeen: 3)
            // The product page filled its entry again; then the cancellation comes
            // again, as after a crash between PostgreSQL and the display cache.
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            try redis.send("SET", display, "{}")
            try f.produce([OrderEvents.cancelled("\(f.id)-c", order: "O1")], partition: 0)
            let report = try f.run(untilSeen: 1)
            return (report.duplicates, try redis.send("EXISTS", display).int)
        }
        #expect(survived.0 == 1)
        #expect(survived.1 == 0)
        try await f.schema.drop()
    }

    /// Defect: a late cancellation's internal eventId (its Redis mark) could be an
    /// inbound eventId. Internal ids now hold a character no inbound id may.
    @Test func internalIdsCannotBeInboundEventIds() throws {
        let token = DerivedID.lateCancellationToken(cancelEventId: "C", orderId: "O", lineId: "L")
        let event = #"{"eventId":"\#(token)","eventType":"ORDER_CANCELLED","timestamp":"2026-11-27T09:30:00Z","orderId":"O"}"#
        guard case .failure(let bad) = EventDecoder.decode(Array(event.utf8)) else {
            Issue.record("\(token) was accepted as an inbound eventId")
            return
        }
        #expect(bad.code == .invalidField)
    }

    /// A PICK that arrives after its order's cancellation (another topic) takes
    /// allocated below zero, by the contract's arithmetic, and available shows the
    /// picked units again. Section 5 alerts on onHand and available: when those
    /// units are sold again and picked, onHand goes below zero and the alert fires.
    @Test func aPickAfterItsOrdersCancellationKeepsTheContractsArithmetic() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let outcome = try await blocking {
            try f.produce([
                WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 3)]),
                OrderEvents.confirmed("\(f.id)-o", order: "O1", [("1", sku, "FC1", 3, nil)]),
                OrderEvents.cancelled("\(f.id)-c", order: "O1"),
                WMSEvents.pick("\(f.id)-p", at: "FC1", order: "O1", [(sku, 3)]),
            ], partition: 0)
            _ = try f.run(untilSeen: 4)
            let afterLatePick = try f.postgresLevels()
            try f.produce([
                OrderEvents.confirmed("\(f.id)-o2", order: "O2", [("1", sku, "FC1", 3, nil)]),
                WMSEvents.pick("\(f.id)-p2", at: "FC1", order: "O2", [(sku, 3)]),
            ], partition: 0)
            _ = try f.run(untilSeen: 2)
            let alerts = try f.query("SELECT alert_type, bucket, value, event_id FROM variance_alerts").rows.map {
                "\(try $0[0].string()) \(try $0[1].string()) \(try $0[2].int()) \(try $0[3].string())"
            }
            return (afterLatePick, try f.postgresLevels(), try f.allocationRows(), alerts)
        }
        let (afterLatePick, afterResale, rows, alerts) = outcome
        // onHand 0, allocated -3 (available 3): the contract's arithmetic, kept.
        #expect(afterLatePick["\(sku)@FC1"] == [0, -3, 0, 0, 3, 0, 0])
        // The same 3 units sold again and picked: onHand -3, and the alert.
        #expect(rows["O2/1"] == "available/allocated/0")
        #expect(afterResale["\(sku)@FC1"] == [-3, -3, 0, 0, 6, 0, 0])
        #expect(alerts == ["INVENTORY_NEGATIVE_ALERT onHand -3 \(f.id)-p2"])
        try await f.schema.drop()
    }

    /// Defects: marks and claims kept for 7 days whatever happened (Redis grew with
    /// history), and a mark could expire before its event reached PostgreSQL.
    /// Now: no expiry while the event is not committed, however long that takes;
    /// gone a short grace after: whether the worker died before its commit (the
    /// restart finds its marks) or after it (the restart finds its claims unreleased).
    @Test(arguments: ["after-redis", "after-postgres"])
    func deduplicationKeysLiveUntilTheCommitAndAGraceAfterIt(crashAt step: String) async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let environment = f.workerEnvironment.merging(["WMS_REDIS_GRACE": "2"]) { $1 }
        let outcome = try await blocking {
            try f.produce([
                WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)]),
                OrderEvents.confirmed("\(f.id)-o", order: "O1", [("1", sku, "FC1", 4, nil)]),
                WMSEvents.pick("\(f.id)-p", at: "FC1", order: "O1", [(sku, 1)]),
                OrderEvents.cancelled("\(f.id)-c", order: "O1"),
                // Waits in the queue, and is filled by the next receipt.
                OrderEvents.confirmed("\(f.id)-o2", order: "O2", [("1", sku, "FC1", 20, nil)]),
                WMSEvents.receiving("\(f.id)-r2", at: "FC1", [(sku, 20)]),
            ], partition: 0)
            let crashed = try WorkerProcess(["run"], environment: environment.merging(["WMS_TEST_FAULT": step]) { $1 })
            _ = try crashed.waitForExit(timeout: .seconds(90))
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            let uncommitted = try Self.keys(of: sku).filter { !$0.hasPrefix("inventory:live:") && !$0.hasPrefix("inventory:backorder") }
                + Self.eventKeys("\(f.id)-")
            let ttlsBefore = try uncommitted.map { try redis.send("PTTL", $0).int ?? -2 }
            let restarted = try WorkerProcess(["run"], environment: environment)
            // Until the restarted worker has been through the batch: every claim released.
            let deadline = ContinuousClock.now + .seconds(60)
            // The claims are known: polling them, not the whole keyspace (a SCAN of every node).
            let claims = try Self.eventKeys("\(f.id)-")
            while try ContinuousClock.now < deadline && claims.contains(where: { try redis.send("PTTL", $0).int == -1 }) {
                Thread.sleep(forTimeInterval: 0.2)
            }
            let committed = Int(try f.query("SELECT count(*) FROM inventory_events").first![0].int())
            Thread.sleep(forTimeInterval: 4)
            let left = try Self.keys(of: sku) + Self.eventKeys("\(f.id)-")
            restarted.signal(SIGTERM)
            _ = try restarted.waitForExit(timeout: .seconds(30))
            return (uncommitted, ttlsBefore, committed, left, try f.postgresLevels(), restarted.log)
        }
        let (uncommitted, ttlsBefore, committed, left, levels, restartLog) = outcome
        #expect(uncommitted.contains { $0.hasPrefix("inventory:applied:") })
        #expect(uncommitted.contains("inventory:claim:{\(f.id)-c}") && uncommitted.contains("inventory:cancel-lines:{\(f.id)-c}"))
        #expect(ttlsBefore.allSatisfy { $0 == -1 }, "keys of uncommitted events must not expire: \(zip(uncommitted, ttlsBefore).map { "\($0)=\($1)" })")
        #expect(committed == 6)
        // The grace over: only the live hash and the queue's sequence are left; the
        // claims the crashed run made (the restart found them standing) are gone too.
        #expect(left == ["inventory:backorder-seq:{\(sku)}", "inventory:live:{\(sku)}:FC1"], "restarted worker:\n\(restartLog.suffix(3000))")
        #expect(levels["\(sku)@FC1"] == [29, 20, 0, 0, 1, 0, 0])
        try await f.schema.drop()
    }
}
