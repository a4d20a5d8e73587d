import Foundation
import Kafka
import Redis
import Testing
import TestSupport
import WMSDomain
import WMSPipeline

/// Section 6: a bad message is never dropped and never stops the worker.
@Suite struct PipelineBadInputTests {
    @Test func everyBadInputClassGoesToTheDeadLetterTopicWithItsHeaders() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let hostileSKU = "X'); DROP TABLE inventory_levels; --"
        let bad: [(code: String, value: [UInt8])] = [
            ("INVALID_JSON", Array("{not json".utf8)),
            ("INVALID_JSON", [0x7B, 0xFF, 0xFE, 0x7D]),
            ("INVALID_JSON", Array("[1,2,3]".utf8)),
            ("INVALID_FIELD", Array(WMSEvents.receiving("\(f.id)-b1", at: "FC1", [(sku, 0)]).utf8)),
            ("INVALID_FIELD", Array(WMSEvents.receiving("\(f.id)-b2", at: "FC1", [(hostileSKU, 1)]).utf8)),
            ("INVALID_FIELD", Array(WMSEvents.receiving("bad id with spaces", at: "FC1", [(sku, 1)]).utf8)),
            ("INVALID_FIELD", Array(#"{"eventId":"\#(f.id)-b3","eventType":"RECEIVING_COMPLETE","timestamp":"yesterday","locationId":"FC1","items":[{"sku":"\#(sku)","quantity":1}]}"#.utf8)),
            ("UNKNOWN_EVENT_TYPE", Array(WMSEvents.envelope("\(f.id)-b4", "TELEPORT", location: "FC1", #""items":[]"#).utf8)),
            ("TOO_LARGE", Array(WMSEvents.envelope("\(f.id)-b5", "RECEIVING_COMPLETE", location: "FC1",
                                                   #""pad":"\#(String(repeating: "x", count: 1_100_000))","items":[{"sku":"\#(sku)","quantity":1}]"#).utf8)),
        ]
        // Valid, with a field the worker ignores holding what PostgreSQL's jsonb refuses (\u0000).
        let good = WMSEvents.envelope("\(f.id)-ok", "RECEIVING_COMPLETE", location: "FC1",
                                      #""note":"nul \u0000 größe","items":[{"sku":"\#(sku)","quantity":3}]"#)
        // (postgresLevels reads inventory_levels: it would throw had a message dropped it.)
        let (report, dead, levels) = try await blocking {
            try f.produce(bad.map(\.value) + [Array(good.utf8)], partition: 0)
            let report = try f.run(untilSeen: bad.count + 1)
            return (report, try f.readAll(f.deadLetterTopic, expecting: bad.count), try f.postgresLevels())
        }
        #expect(report.appliedCount == 1)
        #expect(levels["\(sku)@FC1"]?[0] == 3)
        #expect(dead.count == bad.count)
        let byOffset = Dictionary(uniqueKeysWithValues: dead.map { (String(decoding: $0.header("wms.source.offset") ?? [], as: UTF8.self), $0) })
        for (offset, expected) in bad.enumerated() {
            let message = try #require(byOffset[String(offset)], "dead letter of offset \(offset)")
            #expect(message.header("wms.error.code") == Array(expected.code.utf8), "offset \(offset)")
            #expect(message.header("wms.source.topic") == Array(f.topics[0].utf8))
            #expect(message.header("wms.source.partition") == Array("0".utf8))
            #expect(!(message.header("wms.error.detail") ?? []).isEmpty)
            if expected.code == "TOO_LARGE" {
                #expect(message.value == Array(expected.value.prefix(64 * 1024)))
                #expect(message.header("wms.error.truncated") == Array("true".utf8))
            } else {
                #expect(message.value == expected.value)
                #expect(message.header("wms.error.truncated") == nil)
            }
        }
        let recorded = try await blocking { try f.query("SELECT count(*) AS n FROM dead_letters").first!["n"].int() }
        #expect(recorded == Int64(bad.count))
        try await f.schema.drop()
    }

    /// Section 2 through the real broker: an unknown field may hold any valid
    /// number, a quantity is read by its exact value, numbers are compared
    /// exactly (a 20-digit ref is not rounded into another one), and a repeated
    /// name is not valid JSON.
    @Test func numbersAreExactAndRepeatedNamesAreInvalidJSON() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("N")
        func receiving(_ id: String, _ extra: String) -> String {
            WMSEvents.envelope("\(f.id)-\(id)", "RECEIVING_COMPLETE", location: "FC1", extra)
        }
        let messages = [
            receiving("huge-unknown", #""x":1e400,"items":[{"sku":"\#(sku)","quantity":2}]"#),
            receiving("huge-quantity", #""items":[{"sku":"\#(sku)","quantity":1e400}]"#),
            receiving("repeated", #""eventId":"\#(f.id)-other","items":[{"sku":"\#(sku)","quantity":100}]"#),
            receiving("ref", #""ref":12345678901234567890,"items":[{"sku":"\#(sku)","quantity":5}]"#),
            receiving("ref", #""ref":12345678901234567891,"items":[{"sku":"\#(sku)","quantity":5}]"#),
        ]
        let (report, dead, levels) = try await blocking {
            try f.produce(messages, partition: 0)
            let report = try f.run(untilSeen: messages.count)
            return (report, try f.readAll(f.deadLetterTopic, expecting: 3), try f.postgresLevels())
        }
        #expect(report.appliedCount == 2)
        #expect(levels["\(sku)@FC1"]?[0] == 7)
        let codes = Dictionary(uniqueKeysWithValues: dead.map {
            (String(decoding: $0.header("wms.source.offset") ?? [], as: UTF8.self), String(decoding: $0.header("wms.error.code") ?? [], as: UTF8.self))
        })
        #expect(codes == ["1": "INVALID_FIELD", "2": "INVALID_JSON", "4": "EVENT_ID_CONFLICT"])
        try await f.schema.drop()
    }

    /// Section 6: the original key and headers are kept, byte for byte and in
    /// order (a header value is bytes, or absent), and the worker's own follow.
    @Test func aDeadLetterKeepsTheOriginalKeyAndHeadersByteForByte() async throws {
        let f = try await PipelineFixture.create()
        let key: [UInt8] = [0x46, 0x43, 0xC3, 0x28, 0x00, 0x31]
        let headers = [
            KafkaHeader(name: "traceparent", string: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            KafkaHeader(name: "wms.raw", value: [0xFF, 0xFE, 0x00, 0x80, 0x7B]),
            KafkaHeader(name: "absent", value: nil),
            KafkaHeader(name: "empty", value: []),
        ]
        let bad = Array("{not json".utf8)
        let dead = try await blocking {
            try f.produce(messages: [KafkaOutboundMessage(topic: f.topics[0], partition: 0, key: key, value: bad, headers: headers)])
            _ = try f.run(untilSeen: 1)
            return try f.readAll(f.deadLetterTopic, expecting: 1)
        }
        let message = try #require(dead.first)
        #expect(dead.count == 1)
        #expect(message.value == bad)
        #expect(message.key == key)
        #expect(Array(message.headers.prefix(headers.count)) == headers)
        #expect(message.headers.dropFirst(headers.count).map(\.name) == [
            "wms.error.code", "wms.error.detail", "wms.source.topic", "wms.source.partition", "wms.source.offset", "wms.message.id",
        ])
        #expect(message.header("wms.error.code") == Array("INVALID_JSON".utf8))
        try await f.schema.drop()
    }

    /// Section 6: a dead letter larger than the topic (here, the producer) accepts
    /// is cut to its first 64 KiB, and further if even that is refused, and marked;
    /// the partition moves on. librdkafka refuses it itself above the producer's
    /// `message.max.bytes` (the dev broker has no size limit of its own).
    @Test(arguments: [(producerLimit: 200_000, keptBytes: 64 * 1024), (producerLimit: 50_000, keptBytes: 0)])
    func aDeadLetterTheTopicRefusesIsCutAndThePartitionMovesOn(producerLimit: Int, keptBytes: Int) async throws {
        var fixture = try await PipelineFixture.create()
        fixture.producerProperties = ["message.max.bytes": String(producerLimit)]
        let f = fixture
        let sku = f.sku("S")
        // Under 1 MiB, so not TOO_LARGE: a quantity of 0 makes it INVALID_FIELD.
        let bad = Array(WMSEvents.envelope("\(f.id)-big", "RECEIVING_COMPLETE", location: "FC1",
                                           #""pad":"\#(String(repeating: "x", count: 600_000))","items":[{"sku":"\#(sku)","quantity":0}]"#).utf8)
        let origin = KafkaHeader(name: "origin", string: "wms-7")
        let outcome = try await blocking {
            try f.produce(messages: [
                KafkaOutboundMessage(topic: f.topics[0], partition: 0, key: Array("FC1".utf8), value: bad, headers: [origin]),
                KafkaOutboundMessage(topic: f.topics[0], partition: 0, value: Array(WMSEvents.receiving("\(f.id)-ok", at: "FC1", [(sku, 3)]).utf8)),
            ])
            let report = try f.run(untilSeen: 2, timeout: .seconds(20))
            let unpublished = try f.query("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL").first!["n"].int()
            return (report, try f.readAll(f.deadLetterTopic, expecting: 1), try f.postgresLevels(), unpublished)
        }
        let (report, dead, levels, unpublished) = outcome
        #expect(report.appliedCount == 1)
        #expect(report.deadLetterCount == 1)
        #expect(levels["\(sku)@FC1"]?[0] == 3)
        #expect(unpublished == 0)
        let message = try #require(dead.first)
        #expect(dead.count == 1)
        #expect(message.value == Array(bad.prefix(keptBytes)))
        #expect(message.key == Array("FC1".utf8))
        #expect(message.headers.first == origin)
        #expect(message.header("wms.error.code") == Array("INVALID_FIELD".utf8))
        #expect(message.header("wms.error.truncated") == Array("true".utf8))
        try await f.schema.drop()
    }

    /// A dead letter too large for its topic that a run before left in the outbox
    /// (unpublished) is cut at start-up too: the worker goes on to consume.
    @Test func aTooLargeDeadLetterLeftInTheOutboxDoesNotStopTheNextStart() async throws {
        var fixture = try await PipelineFixture.create()
        fixture.producerProperties = ["message.max.bytes": "200000"]
        let f = fixture
        let sku = f.sku("S")
        let messageId = "dlq:\(f.topics[0]):0:99:abcdef012345"
        let outcome = try await blocking {
            _ = try f.query("""
                INSERT INTO outbox (message_id, topic, payload)
                VALUES ('\(messageId)', '\(f.deadLetterTopic)', convert_to(repeat('x', 600000), 'UTF8'))
                """)
            try f.produce([WMSEvents.receiving("\(f.id)-ok", at: "FC1", [(sku, 3)])], partition: 0)
            let report = try f.run(untilSeen: 1, timeout: .seconds(20))
            return (report, try f.readAll(f.deadLetterTopic, expecting: 1))
        }
        let (report, dead) = outcome
        #expect(report.appliedCount == 1)
        #expect(dead.map(\.value.count) == [64 * 1024])
        #expect(dead.first?.header("wms.error.truncated") == Array("true".utf8))
        try await f.schema.drop()
    }

    /// The same when the broker refuses it (a dead-letter topic whose
    /// max.message.bytes is below the message): a mock cluster of the test's own
    /// refuses the worker's first Produce request as too large, as the dev broker,
    /// without a size limit, never does.
    @Test func aDeadLetterTheBrokerRefusesAsTooLargeIsCut() async throws {
        let fixture = try await PipelineFixture.create()
        let bad = Array(WMSEvents.envelope("\(fixture.id)-big", "RECEIVING_COMPLETE", location: "FC1",
                                           #""pad":"\#(String(repeating: "x", count: 600_000))","items":[{"sku":"S","quantity":0}]"#).utf8)
        let outcome = try await blocking {
            let cluster = try KafkaMockCluster(brokers: 1, logger: PipelineFixture.logger)
            var f = fixture
            f.kafkaBrokers = cluster.bootstrapServers
            for topic in [f.topics[0], f.deadLetterTopic] { try cluster.createTopic(topic, partitions: 1) }
            try f.produce([bad], partition: 0)
            // Kafka's MESSAGE_TOO_LARGE (10), for the next Produce request (ApiKey 0): the dead letter's.
            cluster.pushRequestErrors(apiKey: 0, errors: [10])
            let report = try f.run(untilSeen: 1, timeout: .seconds(30))
            return (report, try f.readAll(f.deadLetterTopic, expecting: 1))
        }
        let (report, dead) = outcome
        #expect(report.deadLetterCount == 1)
        #expect(dead.count == 1)
        #expect(dead.first?.value == Array(bad.prefix(64 * 1024)))
        #expect(dead.first?.header("wms.error.truncated") == Array("true".utf8))
        try await fixture.schema.drop()
    }

    /// Defect 12: an error one message causes ends with that message dead-lettered
    /// and the partition moving on, never with its batch retried forever. What
    /// another writer left in Redis (a bucket that is no integer, one beyond the
    /// exact range, a key of another type) makes every event touching it a dead
    /// letter, with nothing written; so does a quantity that would carry a bucket
    /// past the range. An event of several SKUs is refused whole: no SKU of it
    /// changes.
    @Test func anEventTheHotStoreCannotApplyIsDeadLetteredWithNothingWritten() async throws {
        let f = try await PipelineFixture.create()
        let (corrupt, huge, nearLimit, wrongType, healthy, later) = (f.sku("C"), f.sku("H"), f.sku("L"), f.sku("W"), f.sku("D"), f.sku("E"))
        let limit: Int64 = 1 << 51
        let messages: [(id: String, body: String, dead: Bool)] = [
            ("c", WMSEvents.receiving("\(f.id)-c", at: "FC1", [(corrupt, 1)]), true),
            ("h", WMSEvents.receiving("\(f.id)-h", at: "FC1", [(huge, 1)]), true),
            ("l1", WMSEvents.receiving("\(f.id)-l1", at: "FC1", [(nearLimit, 11)]), true),
            ("l2", WMSEvents.receiving("\(f.id)-l2", at: "FC1", [(nearLimit, 10)]), false),
            ("w", WMSEvents.receiving("\(f.id)-w", at: "FC1", [(wrongType, 1)]), true),
            ("d", WMSEvents.receiving("\(f.id)-d", at: "FC1", [(healthy, 5)]), false),
            ("o", OrderEvents.confirmed("\(f.id)-o", order: "O-\(f.id)", [("1", healthy, "FC1", 2, nil), ("2", corrupt, "FC1", 1, nil)]), true),
            ("e", WMSEvents.receiving("\(f.id)-e", at: "FC1", [(later, 3)]), false),
        ]
        let outcome = try await blocking {
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            _ = try redis.send("HSET", RedisKeys.live(sku: corrupt, location: "FC1"), "reserved", "lots")
            _ = try redis.send("HSET", RedisKeys.live(sku: huge, location: "FC1"), "onHand", "9223372036854775807")
            _ = try redis.send("HSET", RedisKeys.live(sku: nearLimit, location: "FC1"), "onHand", "\(limit - 10)")
            _ = try redis.send("SET", RedisKeys.backorders(sku: wrongType, location: "FC1"), "not a queue")
            try f.produce(messages.map(\.body), partition: 0)
            let report = try f.run(untilSeen: messages.count, timeout: .seconds(30))
            let dead = try f.readAll(f.deadLetterTopic, expecting: messages.filter(\.dead).count)
            let fields = try [corrupt, huge, nearLimit, healthy, later].map { sku in
                try redis.send("HMGET", RedisKeys.live(sku: sku, location: "FC1"), "onHand", "allocated", "reserved").array?.map { $0.string } ?? []
            }
            let refused = [(corrupt, "c"), (huge, "h"), (nearLimit, "l1"), (wrongType, "w"), (healthy, "o"), (corrupt, "o")]
            let marks = try refused.map { sku, id in
                try redis.send("EXISTS", RedisKeys.applied(sku: sku, eventId: "\(f.id)-\(id)")).int ?? -1
            }
            let stored = try f.query("SELECT event_id FROM inventory_events ORDER BY event_id").rows.map { try $0[0].string() }
            return (report, dead, fields, marks, stored)
        }
        let (report, dead, fields, marks, stored) = outcome
        #expect(report.appliedCount == 3)
        #expect(report.deadLetters[.invalidField] == 5)
        let deadOffsets = dead.compactMap { $0.header("wms.source.offset").map { String(decoding: $0, as: UTF8.self) } }.sorted()
        #expect(deadOffsets == messages.indices.filter { messages[$0].dead }.map(String.init).sorted())
        for message in dead {
            #expect(message.header("wms.error.code") == Array("INVALID_FIELD".utf8))
            let detail = String(decoding: message.header("wms.error.detail") ?? [], as: UTF8.self)
            #expect(detail.contains("Redis") || detail.contains("beyond"), "\(detail)")
        }
        // Nothing of a refused event was written, in Redis or PostgreSQL.
        #expect(fields[0] == [nil, nil, "lots"])
        #expect(fields[1] == ["9223372036854775807", nil, nil])
        #expect(fields[2] == ["\(limit)", "0", "0"])
        #expect(fields[3] == ["5", "0", "0"])
        #expect(fields[4] == ["3", "0", "0"])
        #expect(marks.allSatisfy { $0 == 0 })
        #expect(stored == ["\(f.id)-d", "\(f.id)-e", "\(f.id)-l2"])
        try await f.schema.drop()
    }

    /// A sibling of defect 12: a late cancellation (a line a cancellation missed,
    /// released by a later batch) whose SKU the hot store refuses stays pending,
    /// and a hundred of them do not hold back the ones behind.
    @Test func lateCancellationsTheHotStoreRefusesDoNotHoldBackTheOthers() async throws {
        let f = try await PipelineFixture.create()
        let (corrupt, healthy) = (f.sku("C"), f.sku("D"))
        let outcome = try await blocking {
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            _ = try redis.send("HSET", RedisKeys.live(sku: corrupt, location: "FC1"), "onHand", "10", "allocated", "3", "reserved", "lots")
            _ = try redis.send("HSET", RedisKeys.live(sku: healthy, location: "FC1"), "onHand", "10", "allocated", "3", "reserved", "0")
            // 101 lines of the refused SKU pending before the healthy one.
            let stuck = (0...100).map { "('O\($0)', '1', '\(corrupt)', 'FC1', 3, 'allocated', 'cancel-\($0)', now() - interval '1 hour')" }
            _ = try f.query("""
                INSERT INTO pending_cancellations (order_id, line_id, sku, location_id, quantity, status, cancel_event_id, created_at)
                VALUES \(stuck.joined(separator: ", ")), ('OK', '1', '\(healthy)', 'FC1', 3, 'allocated', 'cancel-ok', now())
                """)
            _ = try f.query("""
                INSERT INTO inventory_events (event_id, event_type, occurred_at, payload, payload_digest, source_topic, source_partition, source_offset)
                VALUES ('cancel-ok', 'ORDER_CANCELLED', now(), '{}', '\\x00', 't', 0, 1)
                """)
            _ = try f.query("""
                INSERT INTO allocations (order_id, line_id, sku, location_id, quantity, decision, status, confirmed_by)
                VALUES ('OK', '1', '\(healthy)', 'FC1', 3, 'available', 'allocated', 'confirm-ok')
                """)
            for batch in 0..<2 {
                try f.produce([WMSEvents.receiving("\(f.id)-r\(batch)", at: "FC2", [(healthy, 1)])], partition: 0)
                _ = try f.run(untilSeen: 1)
            }
            let pending = try f.query("SELECT sku, count(*) FROM pending_cancellations GROUP BY sku").rows
                .map { "\(try $0[0].string())=\(try $0[1].int())" }
            let fields = try [corrupt, healthy].map { sku in
                try redis.send("HMGET", RedisKeys.live(sku: sku, location: "FC1"), "allocated", "reserved").array?.map { $0.string } ?? []
            }
            return (pending, fields)
        }
        let (pending, fields) = outcome
        #expect(pending == ["\(corrupt)=101"])
        #expect(fields[0] == ["3", "lots"])
        #expect(fields[1] == ["0", "0"])
        try await f.schema.drop()
    }
}
