import Foundation
import Kafka
import Testing
import TestSupport
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
}
