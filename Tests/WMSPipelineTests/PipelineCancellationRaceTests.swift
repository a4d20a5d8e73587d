import Foundation
import Redis
import Testing
import TestSupport
import WMSDomain
import WMSPipeline

/// Issue 9, defect 6: one ORDER_CANCELLED on two workers at once, each resolving
/// the order's lines from its own view, released in Redis a line that PostgreSQL
/// never released. Section 4: its effects land once in both stores, whichever
/// worker wins; section 5: one ALLOCATION_CANCELLED per line, never before the
/// ALLOCATION it cancels.
@Suite struct PipelineCancellationRaceTests {
    /// Order O: line L1 (4 of A) is committed; line L2 (3 of B) is confirmed in the
    /// same batch as the cancellation C on one worker only, so that worker's view
    /// of C holds L1 and L2 (the wide view) and the other worker's holds L1 alone
    /// (the narrow view). The interleaving is forced, not raced: the first worker
    /// resolves C and runs its scripts, then dies at the `after-redis` fault point;
    /// the second gets C again on another topic, resolves it from the other view
    /// and commits it first; then the first restarts and finds C committed.
    @Test(arguments: [true, false])
    func aCancellationOnTwoWorkersWithDifferentViewsReleasesEachLineOnce(firstResolverSawBothLines: Bool) async throws {
        let f = try await PipelineFixture.create(topics: 2)
        let (a, b) = (f.sku("A"), f.sku("B"))
        let cancel = OrderEvents.cancelled("\(f.id)-c", order: "O")
        let wideView = [OrderEvents.confirmed("\(f.id)-o2", order: "O", [("L2", b, "FC1", 3, nil)]), cancel]
        let narrowView = [cancel]
        // One topic each; the second worker in a group of its own, as if the
        // partition holding the duplicate were assigned to it.
        let firstWorker = f.workerEnvironment.merging(["WMS_TOPICS": f.topics[0]]) { $1 }
        let secondWorker = f.workerEnvironment.merging(["WMS_TOPICS": f.topics[1], "WMS_KAFKA_GROUP_ID": "\(f.group)-second"]) { $1 }

        let crash = try await blocking {
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(a, 10), (b, 10)]),
                           OrderEvents.confirmed("\(f.id)-o1", order: "O", [("L1", a, "FC1", 4, nil)])], partition: 0)
            _ = try f.run(untilSeen: 2)
            try f.produce(firstResolverSawBothLines ? wideView : narrowView, topic: 0, partition: 0)
            let crashed = try WorkerProcess(["run"], environment: firstWorker.merging(["WMS_TEST_FAULT": "after-redis"]) { $1 })
            return (status: try crashed.waitForExit(timeout: .seconds(90)), log: crashed.log, resolved: try Self.resolvedLines(of: "\(f.id)-c"))
        }
        try #require(crash.status == 128 + SIGABRT, "the first worker did not stop after its scripts:\n\(crash.log.suffix(2000))")
        // Its batch held everything produced for it: it resolved C from its own view.
        try #require(crash.resolved == (firstResolverSawBothLines ? ["L1", "L2"] : ["L1"]))

        let second = try await blocking {
            try f.produce(firstResolverSawBothLines ? narrowView : wideView, topic: 1, partition: 0)
            let worker = try WorkerProcess(["run"], environment: secondWorker)
            let settled = try PipelineCrashTests.waitUntilSettled(f, events: firstResolverSawBothLines ? 3 : 4, deadLetters: 0,
                                                                  timeout: .seconds(90))
            worker.signal(SIGTERM)
            _ = try worker.waitForExit(timeout: .seconds(30))
            return (settled: settled, log: worker.log)
        }
        try #require(second.settled, "the second worker did not commit C:\n\(second.log.suffix(3000))")

        let restarted = try WorkerProcess(["run"], environment: firstWorker)
        let base = try await blocking { try restarted.httpBase() }
        // Its batch again, C now a duplicate; then whatever that left to release late.
        let sawItsBatchAgain = await waitForHTTP(base + "/metrics", timeout: .seconds(90)) {
            metricValue($0?.body ?? "", #"wms_events_total{type="ORDER_CANCELLED",outcome="duplicate"}"#) == 1
        }
        let outcome = try await blocking {
            let settled = try PipelineCrashTests.waitUntilSettled(f, events: 4, deadLetters: 0, timeout: .seconds(60))
            restarted.signal(SIGTERM)
            _ = try restarted.waitForExit(timeout: .seconds(30))
            return (settled: settled, log: restarted.log, postgres: try f.postgresLevels(),
                    redis: try f.redisLevels(["\(a)@FC1", "\(b)@FC1"]), rows: try f.allocationRows(),
                    messages: try f.allocationMessages(expecting: 3))
        }
        #expect(sawItsBatchAgain != nil && outcome.settled, "the restarted worker did not finish:\n\(outcome.log.suffix(3000))")

        // Both lines given back once, in both stores.
        for sku in [a, b] {
            #expect(outcome.postgres["\(sku)@FC1"] == [10, 0, 0, 0, 0, 0, 0], "PostgreSQL, \(sku)")
            #expect(outcome.redis["\(sku)@FC1"] == [10, 0, 0, 0, 0, 0, 0, 10], "Redis, \(sku)")
        }
        #expect(outcome.rows == ["O/L1": "available/cancelled/4", "O/L2": "available/cancelled/3"])
        let named = outcome.messages.enumerated().flatMap { index, message in
            (message["lines"]?.arrayValue ?? []).map { line in
                (index: index, type: message["type"]?.stringValue ?? "",
                 line: "\(line["lineId"]?.stringValue ?? "?")=\(line["quantity"]?.integerValue ?? 0)")
            }
        }
        let sent = outcome.messages.compactMap { $0["messageId"]?.stringValue }
        #expect(named.filter { $0.type == "ALLOCATION_CANCELLED" }.map(\.line).sorted() == ["L1=4", "L2=3"], "\(sent)")
        for line in ["L1=4", "L2=3"] {
            let allocatedAt = named.first { $0.type == "ALLOCATION" && $0.line == line }?.index
            let cancelledAt = named.first { $0.type == "ALLOCATION_CANCELLED" && $0.line == line }?.index
            #expect(allocatedAt.map { allocated in cancelledAt.map { allocated < $0 } ?? false } ?? false,
                    "\(line): ALLOCATION at \(allocatedAt.map(String.init) ?? "none"), ALLOCATION_CANCELLED at \(cancelledAt.map(String.init) ?? "none"): \(sent)")
        }
        try await f.schema.drop()
    }

    /// Defect (a CI soak): a fill in Redis that PostgreSQL does not hold yet, and
    /// the order's cancellation on another worker. Line L1 (3 of A) of order O is
    /// waiting; a receipt fills it on the first worker, which dies after its
    /// scripts. The second worker's cancellation found L1 allocated in Redis,
    /// released it, and published ALLOCATION_CANCELLED, before the restarted
    /// first worker committed the fill and published its ALLOCATION. Section 5:
    /// the ALLOCATION goes first. Section 4: each line released once in both stores.
    @Test func aFillInFlightOnAnotherWorkerIsPublishedBeforeItsCancellation() async throws {
        let f = try await PipelineFixture.create(topics: 2)
        let a = f.sku("A")
        let firstWorker = f.workerEnvironment.merging(["WMS_TOPICS": f.topics[0]]) { $1 }
        let secondWorker = f.workerEnvironment.merging(["WMS_TOPICS": f.topics[1], "WMS_KAFKA_GROUP_ID": "\(f.group)-second"]) { $1 }
        try await Self.fillInRedisOnly(f, sku: a, firstWorker: firstWorker)

        let second = try await blocking {
            try f.produce([OrderEvents.cancelled("\(f.id)-c", order: "O")], topic: 1, partition: 0)
            let worker = try WorkerProcess(["run"], environment: secondWorker)
            let settled = try PipelineCrashTests.waitUntilSettled(f, events: 2, deadLetters: 0, timeout: .seconds(90))
            worker.signal(SIGTERM)
            _ = try worker.waitForExit(timeout: .seconds(30))
            return (settled: settled, log: worker.log)
        }
        try #require(second.settled, "the second worker did not commit the cancellation:\n\(second.log.suffix(3000))")

        let restarted = try WorkerProcess(["run"], environment: firstWorker)
        let outcome = try await blocking {
            let settled = try PipelineCrashTests.waitUntilSettled(f, events: 3, deadLetters: 0, timeout: .seconds(90))
            restarted.signal(SIGTERM)
            _ = try restarted.waitForExit(timeout: .seconds(30))
            return (settled: settled, log: restarted.log, postgres: try f.postgresLevels(), redis: try f.redisLevels(["\(a)@FC1"]),
                    rows: try f.allocationRows(), messages: try f.allocationMessages(expecting: 2))
        }
        #expect(outcome.settled, "the restarted worker did not finish:\n\(outcome.log.suffix(3000))")
        #expect(outcome.postgres["\(a)@FC1"] == [10, 0, 0, 0, 0, 0, 0])
        #expect(outcome.redis["\(a)@FC1"] == [10, 0, 0, 0, 0, 0, 0, 10])
        #expect(outcome.rows == ["O/L1": "backordered/cancelled/3"])
        let types = outcome.messages.map { $0["type"]?.stringValue ?? "" }
        let sent = outcome.messages.compactMap { $0["messageId"]?.stringValue }
        #expect(types == ["ALLOCATION", "ALLOCATION_CANCELLED"], "\(sent)")
        try await f.schema.drop()
    }

    /// The same through the late path. A cancellation committed beside the line's
    /// confirmation left L1 pending its release; a late release on another worker
    /// found L1 filled in Redis by a receipt whose worker died after its scripts.
    /// It is recorded, and its ALLOCATION_CANCELLED sent, once the fill has
    /// committed; the late release's keys still go after the grace.
    @Test func aLateReleaseOfAFillInFlightIsPublishedAfterItsAllocation() async throws {
        let f = try await PipelineFixture.create(topics: 2)
        let a = f.sku("A")
        let firstWorker = f.workerEnvironment.merging(["WMS_TOPICS": f.topics[0], "WMS_REDIS_GRACE": "1"]) { $1 }
        let secondWorker = f.workerEnvironment.merging([
            "WMS_TOPICS": f.topics[1], "WMS_KAFKA_GROUP_ID": "\(f.group)-second", "WMS_REDIS_GRACE": "1",
        ]) { $1 }
        let mark = RedisKeys.applied(sku: a, eventId: DerivedID.lateCancellationToken(cancelEventId: "\(f.id)-x", orderId: "O", lineId: "L1"))
        try await Self.fillInRedisOnly(f, sku: a, firstWorker: firstWorker)

        let second = try await blocking {
            // What a cancellation committed beside the confirmation leaves: the line, pending its release.
            _ = try f.query("""
                INSERT INTO pending_cancellations (order_id, line_id, sku, location_id, quantity, status, cancel_event_id)
                VALUES ('O', 'L1', '\(a)', 'FC1', 3, 'backordered', '\(f.id)-x')
                """)
            let worker = try WorkerProcess(["run"], environment: secondWorker)
            let deadline = ContinuousClock.now + .seconds(90)
            var released = false
            while !released, ContinuousClock.now < deadline {
                usleep(200_000)
                released = try f.query("SELECT count(*) AS n FROM pending_cancellations WHERE released IS NULL").first!["n"].int() == 0
            }
            worker.signal(SIGTERM)
            _ = try worker.waitForExit(timeout: .seconds(30))
            return (released: released, log: worker.log)
        }
        try #require(second.released, "the second worker did not release the line:\n\(second.log.suffix(3000))")

        let restarted = try WorkerProcess(["run"], environment: firstWorker)
        let outcome = try await blocking {
            let settled = try PipelineCrashTests.waitUntilSettled(f, events: 2, deadLetters: 0, timeout: .seconds(90))
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            let deadline = ContinuousClock.now + .seconds(30)
            var markExpiry = try redis.send("PTTL", mark).int ?? 0
            while markExpiry != -2, ContinuousClock.now < deadline {
                usleep(200_000)
                markExpiry = try redis.send("PTTL", mark).int ?? 0
            }
            restarted.signal(SIGTERM)
            _ = try restarted.waitForExit(timeout: .seconds(30))
            return (settled: settled, log: restarted.log, markExpiry: markExpiry, postgres: try f.postgresLevels(),
                    redis: try f.redisLevels(["\(a)@FC1"]), rows: try f.allocationRows(),
                    left: try f.query("SELECT (SELECT count(*) FROM pending_cancellations) + (SELECT count(*) FROM late_cancellation_releases) AS n")
                        .first!["n"].int(),
                    messages: try f.allocationMessages(expecting: 2))
        }
        #expect(outcome.settled, "the restarted worker did not finish:\n\(outcome.log.suffix(3000))")
        #expect(outcome.postgres["\(a)@FC1"] == [10, 0, 0, 0, 0, 0, 0])
        #expect(outcome.redis["\(a)@FC1"] == [10, 0, 0, 0, 0, 0, 0, 10])
        #expect(outcome.rows == ["O/L1": "backordered/cancelled/3"])
        #expect(outcome.left == 0, "pending or owed rows left")
        #expect(outcome.markExpiry == -2, "the late release's mark kept without expiry")
        let sent = outcome.messages.compactMap { $0["messageId"]?.stringValue }
        #expect(outcome.messages.map { $0["type"]?.stringValue ?? "" } == ["ALLOCATION", "ALLOCATION_CANCELLED"], "\(sent)")
        try await f.schema.drop()
    }

    /// Line L1 (3 of `sku` at FC1) of order O waits, committed; a receipt of 10
    /// fills it on the first worker, which dies after its scripts: the fill is in
    /// Redis and not in PostgreSQL.
    static func fillInRedisOnly(_ f: PipelineFixture, sku: String, firstWorker: [String: String]) async throws {
        let crash = try await blocking {
            try f.produce([OrderEvents.confirmed("\(f.id)-o", order: "O", [("L1", sku, "FC1", 3, nil)])], partition: 0)
            _ = try f.run(untilSeen: 1)
            try f.produce([WMSEvents.receiving("\(f.id)-r", at: "FC1", [(sku, 10)])], partition: 0)
            let crashed = try WorkerProcess(["run"], environment: firstWorker.merging(["WMS_TEST_FAULT": "after-redis"]) { $1 })
            return (status: try crashed.waitForExit(timeout: .seconds(90)), log: crashed.log, rows: try f.allocationRows())
        }
        try #require(crash.status == 128 + SIGABRT, "the first worker did not stop after its scripts:\n\(crash.log.suffix(2000))")
        try #require(crash.rows == ["O/L1": "backordered/backordered/0"])
    }

    /// The lineIds of a cancellation's standing resolution (`inventory:cancel-lines:{EVENT}`), sorted.
    static func resolvedLines(of eventId: String) throws -> [String] {
        let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
        guard let bytes = try redis.send("GET", RedisKeys.cancelledLines(eventId: eventId)).bytes else { return [] }
        return (try JSONValue.parse(bytes).arrayValue ?? []).compactMap { $0["lineId"]?.stringValue }.sorted()
    }
}
