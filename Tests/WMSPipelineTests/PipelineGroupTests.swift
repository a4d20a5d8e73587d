import Foundation
import Kafka
import Postgres
import Testing
import TestSupport
import WMSPipeline

/// Section 4: several workers in one consumer group, partitions moving between them.
@Suite struct PipelineGroupTests {
    @Test func twoWorkersOneStoppedMidStreamApplyEveryEventOnce() async throws {
        var fixture = try await PipelineFixture.create()
        // Small batches: the stream lasts long enough for the group to share it.
        fixture.maxBatchSize = 20
        let f = fixture
        let skus = (0..<20).map { f.sku("S\($0)") }
        // 800 receipts of 1..4 units spread over the 4 partitions, plus 200 resends.
        let receipts = (0..<800).map { WMSEvents.receiving("\(f.id)-\($0)", at: "FC\($0 % 3)", [(skus[$0 % 20], 1 + $0 % 4)]) }
        let resends = (0..<200).map { receipts[($0 * 7) % 800] }
        let expected = (0..<800).reduce(into: [String: Int64]()) { sums, index in
            sums["\(skus[index % 20])@FC\(index % 3)", default: 0] += Int64(1 + index % 4)
        }
        try await blocking {
            for (index, chunk) in stride(from: 0, to: 1000, by: 250).enumerated() {
                try f.produce(Array((receipts + resends)[chunk..<chunk + 250]), partition: Int32(index))
            }
        }
        // Both join; the first stops (leaving the group) after a part of the stream,
        // and its partitions move to the second mid-stream.
        async let first = blocking("first") { try f.run(untilSeen: 300) }
        async let second = blocking("second") { try Self.runUntilEventCount(f, 800, timeout: .seconds(120)) }
        let (firstReport, secondDone) = try await (first, second)
        let (levels, events, ledger) = try await blocking {
            (try f.postgresLevels(), try f.query("SELECT count(*) AS n FROM inventory_events").first!["n"].int(),
             try f.query("SELECT count(*) AS n FROM inventory_transactions").first!["n"].int())
        }
        let firstSeen = firstReport.appliedCount + firstReport.duplicates
        #expect(firstSeen >= 300)
        #expect(firstSeen < 1000, "the first worker took the whole stream: nothing moved mid-stream")
        #expect(secondDone)
        #expect(events == 800)
        #expect(ledger == 800)
        #expect(levels.mapValues { $0[0] } == expected)
        let redis = try await blocking { try f.redisLevels(expected.keys) }
        #expect(redis.mapValues { $0[0] } == expected)
        try await f.schema.drop()
    }

    /// A pipeline of the fixture's group that runs until PostgreSQL holds `count` events.
    static func runUntilEventCount(_ f: PipelineFixture, _ count: Int64, timeout: Duration) throws -> Bool {
        let db = try PostgresConnection(url: f.schema.url)
        let deadline = ContinuousClock.now + timeout
        var reached = false
        _ = try f.run(until: { _ in
            reached = (try? db.query("SELECT count(*) AS n FROM inventory_events").first?["n"].int()) == count
            return reached || ContinuousClock.now >= deadline
        })
        return reached
    }
}
