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
}
