import Foundation
import Kafka
import Testing
import TestSupport
import Redis
import WMSDomain
import WMSPipeline

/// Section 4: every event's effects land exactly once, whatever is delivered again.
@Suite struct PipelineIdempotencyTests {
    @Test func duplicatesResendsOnAnotherTopicAndReplaysChangeNothing() async throws {
        let f = try await PipelineFixture.create(topics: 2)
        let sku = f.sku("S")
        let receipt = WMSEvents.receiving("\(f.id)-1", at: "FC1", [(sku, 50)])
        // The same event with its keys in another order and other whitespace: the same JSON value.
        let reordered = #"{ "source":"wms", "items":[{"quantity":50,"sku":"\#(sku)"}], "purchaseOrderId":"PO-1","locationId":"FC1","#
            + #" "timestamp":"2026-11-27T08:00:00.000Z","eventType":"RECEIVING_COMPLETE","eventId":"\#(f.id)-1" }"#
        let pick = WMSEvents.pick("\(f.id)-2", at: "FC1", [(sku, 5)])
        let outcome = try await blocking {
            try f.produce([receipt, receipt, pick, reordered], topic: 0, partition: 0)
            try f.produce([pick, receipt], topic: 1, partition: 3)
            let first = try f.run(untilSeen: 6)
            let afterFirst = try f.postgresLevels()
            // A replay from the beginning, twice: new groups read everything again.
            let replays = try (1...2).map { _ in try f.run(untilSeen: 6, group: "replay-\(UUID().uuidString.prefix(8))") }
            let events = try f.query("SELECT count(*) AS n FROM inventory_events").first!["n"].int()
            return (first, afterFirst, replays, try f.postgresLevels(), try f.redisLevels([ "\(sku)@FC1" ]), events)
        }
        let (first, afterFirst, replays, afterReplays, redis, events) = outcome
        #expect(first.appliedCount == 2)
        #expect(first.duplicates == 4)
        #expect(first.deadLetterCount == 0)
        #expect(replays.map(\.appliedCount) == [0, 0])
        #expect(replays.map(\.duplicates) == [6, 6])
        #expect(afterFirst["\(sku)@FC1"] == [45, -5, 0, 0, 5, 0, 0])
        #expect(afterReplays == afterFirst)
        #expect(redis["\(sku)@FC1"] == [45, -5, 0, 0, 5, 0, 0, 50])
        #expect(events == 2)
        try await f.schema.drop()
    }

    @Test func theSameEventIdWithAnotherPayloadIsADeadLetterAndTheFirstStands() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let first = WMSEvents.receiving("\(f.id)-1", at: "FC1", [(sku, 10)])
        let changed = WMSEvents.receiving("\(f.id)-1", at: "FC1", [(sku, 11)])
        let (report, levels, dead) = try await blocking {
            try f.produce([first, changed], partition: 1)
            let report = try f.run(untilSeen: 2)
            // Again in a later batch, once PostgreSQL holds the first.
            try f.produce([changed], partition: 2)
            _ = try f.run(untilSeen: 1)
            return (report, try f.postgresLevels(), try f.readAll(f.deadLetterTopic, expecting: 2))
        }
        #expect(report.appliedCount == 1)
        #expect(levels["\(sku)@FC1"]?[0] == 10)
        #expect(dead.count == 2)
        for message in dead {
            #expect(message.header("wms.error.code") == Array("EVENT_ID_CONFLICT".utf8))
            #expect(message.value == Array(changed.utf8))
        }
        try await f.schema.drop()
    }

    /// A run that claimed an event in Redis and died before PostgreSQL: another
    /// payload of that eventId, touching another SKU and read first, must not land.
    @Test func theFirstClaimStandsAcrossSKUsAfterACrash() async throws {
        let f = try await PipelineFixture.create()
        let (x, y) = (f.sku("X"), f.sku("Y"))
        let original = WMSEvents.receiving("\(f.id)-e", at: "FC1", [(x, 7)])
        let other = WMSEvents.receiving("\(f.id)-e", at: "FC1", [(y, 9)])
        let outcome = try await blocking {
            let digest = try EventDecoder.decode(Array(original.utf8)).get().digest
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            try redis.send("SET", "inventory:claim:{\(f.id)-e}", digest, "EX", 600)
            try f.produce([other, original], partition: 0)
            let report = try f.run(untilSeen: 2)
            return (report, try f.postgresLevels(), try f.redisLevels(["\(x)@FC1", "\(y)@FC1"]), try f.readAll(f.deadLetterTopic, expecting: 1))
        }
        let (report, postgres, redis, dead) = outcome
        #expect(report.appliedCount == 1)
        #expect(postgres == ["\(x)@FC1": [7, 0, 0, 0, 0, 0, 0]])
        #expect(redis["\(x)@FC1"]?.first == 7)
        #expect(redis["\(y)@FC1"]?.first == -999_999)
        #expect(dead.map(\.value) == [Array(other.utf8)])
        #expect(dead.first?.header("wms.error.code") == Array("EVENT_ID_CONFLICT".utf8))
        try await f.schema.drop()
    }
}
