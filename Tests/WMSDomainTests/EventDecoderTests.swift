import Testing
import WMSDomain

/// One broken message: a valid one of `type`, edited, and the bad event expected.
struct BrokenMessage: Sendable, CustomTestStringConvertible {
    var type: EventType
    var code: BadEventCode
    var detail: String
    var edit: @Sendable (inout [String: JSONValue]) -> Void

    init(_ type: EventType, _ code: BadEventCode, _ detail: String, edit: @escaping @Sendable (inout [String: JSONValue]) -> Void) {
        self.type = type
        self.code = code
        self.detail = detail
        self.edit = edit
    }

    init(_ type: EventType, _ detail: String, edit: @escaping @Sendable (inout [String: JSONValue]) -> Void) {
        self.init(type, .invalidField, detail, edit: edit)
    }

    var testDescription: String { "\(type.rawValue) → \(code.rawValue) \(detail)" }
}

private let long129 = String(repeating: "a", count: 129)
private let quantityRule = "must be an integer from 1 to 1000000000"
private let idRule = "must be 1-128 characters of [A-Za-z0-9._:-]"
private let skuRule = "must be 1-64 characters of [A-Za-z0-9._-]"
private let locationRule = "must be 1-32 characters of [A-Za-z0-9._-]"
private let reasonRule = "must be a string of 1 to 512 characters without U+0000"
private let timestampRule = "must be an RFC 3339 date-time with offset, like 2024-05-01T12:00:00Z"

@Suite struct EventDecoderRuleTests {
    static let brokenMessages: [BrokenMessage] = [
        // eventType
        .init(.pickComplete, "eventType: is required") { $0["eventType"] = nil },
        .init(.pickComplete, "eventType: must be a string naming the event type, got 5") { $0["eventType"] = 5 },
        .init(.pickComplete, "eventType: must be a string naming the event type, got null") { $0["eventType"] = .null },
        .init(.pickComplete, .unknownEventType, #"eventType: unknown event type "FOO""#) { $0["eventType"] = "FOO" },
        .init(.pickComplete, .unknownEventType, #"eventType: unknown event type "pick_complete""#) { $0["eventType"] = "pick_complete" },
        // eventId
        .init(.pickComplete, "eventId: is required") { $0["eventId"] = nil },
        .init(.pickComplete, "eventId: \(idRule), got null") { $0["eventId"] = .null },
        .init(.pickComplete, #"eventId: \#(idRule), got """#) { $0["eventId"] = "" },
        .init(.pickComplete, #"eventId: \#(idRule), got "a b""#) { $0["eventId"] = "a b" },
        .init(.pickComplete, #"eventId: \#(idRule), got "e1\n""#) { $0["eventId"] = "e1\n" },
        .init(.pickComplete, #"eventId: \#(idRule), got "\#(String(long129.prefix(64)))…""#) { $0["eventId"] = .string(long129) },
        .init(.pickComplete, "eventId: \(idRule), got 17") { $0["eventId"] = 17 },
        // timestamp
        .init(.pickComplete, "timestamp: is required") { $0["timestamp"] = nil },
        .init(.pickComplete, #"timestamp: \#(timestampRule), got "2024-05-01T12:00:00""#) { $0["timestamp"] = "2024-05-01T12:00:00" },
        .init(.pickComplete, #"timestamp: \#(timestampRule), got "2023-02-29T12:00:00Z""#) { $0["timestamp"] = "2023-02-29T12:00:00Z" },
        .init(.pickComplete, "timestamp: \(timestampRule), got 1714564800000") { $0["timestamp"] = 1_714_564_800_000 },
        // locationId, source
        .init(.pickComplete, "locationId: is required") { $0["locationId"] = nil },
        .init(.cycleCountAdjustment, "locationId: \(locationRule), got null") { $0["locationId"] = .null },
        .init(.receivingComplete, #"locationId: \#(locationRule), got "FC:1""#) { $0["locationId"] = "FC:1" },
        .init(.orderConfirmed, #"locationId: \#(locationRule), got "\#(String(repeating: "L", count: 33))""#) {
            $0["locationId"] = .string(String(repeating: "L", count: 33))
        },
        .init(.receivingComplete, #"source: must be one of inventory_service, order_service, wms, got "erp""#) { $0["source"] = "erp" },
        .init(.receivingComplete, #"source: must be one of inventory_service, order_service, wms, got "WMS""#) { $0["source"] = "WMS" },
        // items
        .init(.receivingComplete, "items: is required") { $0["items"] = nil },
        .init(.receivingComplete, "items: must be an array of 1 to 1000 objects, got null") { $0["items"] = .null },
        .init(.receivingComplete, "items: must be an array of 1 to 1000 objects, got an array of 0 entries") { $0["items"] = [] },
        .init(.receivingComplete, "items: must be an array of 1 to 1000 objects, got an array of 1001 entries") {
            $0["items"] = .array(Array(repeating: ["sku": "S", "quantity": 1], count: 1_001))
        },
        .init(.receivingComplete, "items: must be an array of 1 to 1000 objects, got an object") { $0["items"] = ["sku": "S", "quantity": 1] },
        .init(.receivingComplete, #"items[1]: must be an object, got "SKU-2""#) { $0["items"] = [["sku": "S", "quantity": 1], "SKU-2"] },
        .init(.receivingComplete, "items[0].sku: is required") { $0["items"] = [["quantity": 1]] },
        .init(.receivingComplete, #"items[0].sku: \#(skuRule), got "S:1""#) { $0["items"] = [["sku": "S:1", "quantity": 1]] },
        .init(.receivingComplete, #"items[0].sku: \#(skuRule), got "\#(String(repeating: "S", count: 64))…""#) {
            $0["items"] = [["sku": .string(String(repeating: "S", count: 65)), "quantity": 1]]
        },
        .init(.receivingComplete, #"items[0].sku: \#(skuRule), got "SKU١""#) { $0["items"] = [["sku": "SKU١", "quantity": 1]] },
        .init(.receivingComplete, "items[1].quantity: is required") { $0["items"] = [["sku": "S", "quantity": 1], ["sku": "S"]] },
        .init(.receivingComplete, "items[1].quantity: \(quantityRule), got 0") { $0["items"] = [["sku": "S", "quantity": 1], ["sku": "S", "quantity": 0]] },
        .init(.pickComplete, "items[0].quantity: \(quantityRule), got -3") { $0["items"] = [["sku": "S", "quantity": -3]] },
        .init(.pickComplete, "items[0].quantity: \(quantityRule), got 1000000001") { $0["items"] = [["sku": "S", "quantity": 1_000_000_001]] },
        .init(.pickComplete, "items[0].quantity: \(quantityRule), got 2.5") { $0["items"] = [["sku": "S", "quantity": 2.5]] },
        .init(.pickComplete, #"items[0].quantity: \#(quantityRule), got "5""#) { $0["items"] = [["sku": "S", "quantity": "5"]] },
        .init(.pickComplete, "items[0].quantity: \(quantityRule), got true") { $0["items"] = [["sku": "S", "quantity": true]] },
        .init(.pickComplete, "items[0].quantity: \(quantityRule), got null") { $0["items"] = [["sku": "S", "quantity": nil]] },
        // per-type fields
        .init(.receivingComplete, "purchaseOrderId: \(idRule), got 12") { $0["purchaseOrderId"] = 12 },
        .init(.pickComplete, "orderId: is required") { $0["orderId"] = nil },
        .init(.packComplete, #"orderId: \#(idRule), got "ORD 1""#) { $0["orderId"] = "ORD 1" },
        .init(.shipComplete, "orderId: \(idRule), got null") { $0["orderId"] = .null },
        .init(.shipComplete, #"shipmentId: \#(idRule), got """#) { $0["shipmentId"] = "" },
        .init(.cycleCountAdjustment, "sku: is required") { $0["sku"] = nil },
        .init(.cycleCountAdjustment, "expectedCount: must be an integer from 0 to 1000000000, got -1") { $0["expectedCount"] = -1 },
        .init(.cycleCountAdjustment, "expectedCount: is required") { $0["expectedCount"] = nil },
        .init(.cycleCountAdjustment, "actualCount: must be an integer from 0 to 1000000000, got 1000000001") { $0["actualCount"] = 1_000_000_001 },
        .init(.cycleCountAdjustment, #"actualCount: must be an integer from 0 to 1000000000, got "7""#) { $0["actualCount"] = "7" },
        .init(.cycleCountAdjustment, "reason: is required") { $0["reason"] = nil },
        .init(.cycleCountAdjustment, #"reason: \#(reasonRule), got """#) { $0["reason"] = "" },
        .init(.cycleCountAdjustment, #"reason: \#(reasonRule), got "\#(String(repeating: "r", count: 64))…""#) {
            $0["reason"] = .string(String(repeating: "r", count: 513))
        },
        .init(.cycleCountAdjustment, #"reason: \#(reasonRule), got "a\u0000b""#) { $0["reason"] = "a\u{0}b" },
        .init(.cycleCountAdjustment, #"approvedBy: \#(idRule), got "J. Doe""#) { $0["approvedBy"] = "J. Doe" },
        .init(.cycleCountAdjustment, "auditId: \(idRule), got false") { $0["auditId"] = false },
        .init(.damageReport, "reason: is required") { $0["reason"] = nil },
        .init(.damageReport, "reason: \(reasonRule), got 3") { $0["reason"] = 3 },
        .init(.transferShipped, "transferId: is required") { $0["transferId"] = nil },
        .init(.transferShipped, "toLocationId: is required") { $0["toLocationId"] = nil },
        .init(.transferReceived, #"fromLocationId: \#(locationRule), got "FC/2""#) { $0["fromLocationId"] = "FC/2" },
        .init(.orderConfirmed, "lines: is required") { $0["lines"] = nil },
        .init(.orderConfirmed, "lines: must be an array of 1 to 1000 objects, got an array of 0 entries") { $0["lines"] = [] },
        .init(.orderConfirmed, "lines[0].lineId: is required") { $0["lines"] = [["sku": "S", "locationId": "FC-1", "quantity": 1]] },
        .init(.orderConfirmed, "lines[0].locationId: is required") { $0["lines"] = [["lineId": "L1", "sku": "S", "quantity": 1]] },
        .init(.orderConfirmed, "lines[0].quantity: \(quantityRule), got 0") { $0["lines"] = [["lineId": "L1", "sku": "S", "locationId": "FC-1", "quantity": 0]] },
        .init(.orderConfirmed, #"lines[0].reservationId: \#(idRule), got "r#1""#) {
            $0["lines"] = [["lineId": "L1", "sku": "S", "locationId": "FC-1", "quantity": 1, "reservationId": "r#1"]]
        },
        .init(.orderConfirmed, "lines: must not repeat a lineId, got L1 twice") {
            $0["lines"] = [["lineId": "L1", "sku": "A", "locationId": "FC-1", "quantity": 1], ["lineId": "L1", "sku": "B", "locationId": "FC-1", "quantity": 2]]
        },
        .init(.orderCancelled, "orderId: is required") { $0["orderId"] = nil },
        .init(.orderCancelled, "lines: must be an array of 1 to 1000 objects, got an array of 0 entries") { $0["lines"] = [] },
        .init(.orderCancelled, "lines[1].lineId: is required") { $0["lines"] = [["lineId": "L1"], ["id": "L2"]] },
        .init(.orderCancelled, #"lines[0]: must be an object, got "L1""#) { $0["lines"] = ["L1"] },
        // The first violation wins: envelope before body, eventType before the rest.
        .init(.pickComplete, #"eventId: \#(idRule), got "bad id""#) {
            $0["eventId"] = "bad id"
            $0["items"] = []
        },
        .init(.pickComplete, .unknownEventType, #"eventType: unknown event type "NOPE""#) {
            $0["eventType"] = "NOPE"
            $0["eventId"] = nil
            $0["timestamp"] = "yesterday"
        },
        .init(.pickComplete, "items[0].quantity: \(quantityRule), got 0") {
            $0["items"] = [["sku": "S", "quantity": 0], ["sku": "S:", "quantity": 1]]
        },
    ]

    @Test(arguments: brokenMessages)
    func reportsTheFirstViolation(_ broken: BrokenMessage) {
        var fields = Fixtures.message(broken.type)
        broken.edit(&fields)
        let bad = Fixtures.decode(fields).failure
        #expect(bad?.code == broken.code)
        #expect(bad?.detail == broken.detail)
    }

    @Test func badEventsCarryAValidEventId() {
        var unknown = Fixtures.message(.pickComplete)
        unknown["eventType"] = "SOMETHING_NEW"
        #expect(Fixtures.decode(unknown).failure?.eventId == Fixtures.eventId)

        var badQuantity = Fixtures.message(.pickComplete)
        badQuantity["items"] = [["sku": "S", "quantity": 0]]
        #expect(Fixtures.decode(badQuantity).failure?.eventId == Fixtures.eventId)

        var badId = Fixtures.message(.pickComplete)
        badId["eventId"] = "not valid"
        #expect(Fixtures.decode(badId).failure?.eventId == nil)
        badId["eventType"] = "SOMETHING_NEW"
        let unknownWithBadId = Fixtures.decode(badId).failure
        #expect(unknownWithBadId?.code == .unknownEventType)
        #expect(unknownWithBadId?.eventId == nil)
    }

    @Test(arguments: [
        ("", "unexpected end of input, expected a value at byte 0"),
        (#"{"eventId":"e1","#, "unexpected end of input, expected a string key at byte 16"),
        ("[]", "message must be a JSON object, got an array of 0 entries"),
        (#""hello""#, #"message must be a JSON object, got "hello""#),
        ("null", "message must be a JSON object, got null"),
        ("42", "message must be a JSON object, got 42"),
        ("{} {}", "unexpected '{', expected the end of the input at byte 3"),
    ])
    func invalidJSON(text: String, detail: String) {
        let bad = EventDecoder.decode(Array(text.utf8)).failure
        #expect(bad == BadEvent(code: .invalidJSON, detail: detail))
    }

    @Test func invalidUTF8IsInvalidJSON() {
        var bytes = Fixtures.bytes(Fixtures.message(.receivingComplete))
        let at = bytes.firstIndex(of: UInt8(ascii: "F"))!
        bytes[at] = 0xFF
        #expect(EventDecoder.decode(bytes).failure?.code == .invalidJSON)
        #expect(EventDecoder.decode(bytes).failure?.detail == "invalid UTF-8 at byte \(at)")
    }

    @Test func sizeLimitIsOneMebibyte() throws {
        let message = Fixtures.bytes(Fixtures.message(.receivingComplete))
        let padding = EventDecoder.maxMessageBytes - message.count
        // Whitespace before the closing brace keeps the message valid JSON at any size.
        let atLimit = message.dropLast() + [UInt8](repeating: UInt8(ascii: " "), count: padding) + [UInt8(ascii: "}")]
        #expect(atLimit.count == 1_048_576)
        let decoded = try EventDecoder.decode(Array(atLimit)).get()
        #expect(decoded.canonicalJSON == message)

        let overLimit = Array(atLimit) + [UInt8(ascii: " ")]
        #expect(EventDecoder.decode(overLimit).failure
            == BadEvent(code: .tooLarge, detail: "message of 1048577 bytes is over the limit of 1048576 bytes"))
        // Size is checked first: even garbage over the limit is TOO_LARGE.
        #expect(EventDecoder.decode([UInt8](repeating: 0xFF, count: 2_000_000)).failure?.code == .tooLarge)
    }

    @Test func detailsStayShortAndSingleLine() {
        var fields = Fixtures.message(.cycleCountAdjustment)
        fields["reason"] = .string(String(repeating: "line\n\"quoted\"\u{1}", count: 2_000))
        let detail = Fixtures.decode(fields).failure?.detail ?? ""
        #expect(detail.count < 200)
        #expect(!detail.contains("\n"))
        #expect(detail.hasSuffix("…\""))
        #expect(detail.contains(#"line\n\"quoted\"\u0001"#))

        fields["reason"] = "a\u{85}b\u{2028}c\u{202E}d\u{7F}é"
        #expect(Fixtures.decode(fields).failure == nil)
        fields["reason"] = .string("\u{0}a\u{85}b\u{2028}c\u{202E}d\u{7F}é")
        #expect(Fixtures.decode(fields).failure?.detail == #"reason: \#(reasonRule), got "\u0000a\u0085b\u2028c\u202ed\u007fé""#)
    }
}

@Suite struct EventDecoderSuccessTests {
    @Test func decodesTheEnvelope() throws {
        var fields = Fixtures.message(.receivingComplete)
        fields["source"] = "wms"
        fields["timestamp"] = "2024-05-01T17:30:00.250+05:30"
        let event = try Fixtures.event(fields)
        #expect(event.eventId == Fixtures.eventId)
        #expect(event.type == .receivingComplete)
        #expect(event.timestamp == "2024-05-01T17:30:00.250+05:30")
        #expect(event.occurredAtMs == Fixtures.timestampMs + 250)
        #expect(event.locationId == "FC-1")
        #expect(event.source == "wms")
    }

    static let items = [ItemLine(sku: "SKU-1", quantity: 5), ItemLine(sku: "SKU-2", quantity: 2)]

    @Test(arguments: [
        (EventType.receivingComplete, EventBody.receiving(purchaseOrderId: "PO-9", items: items)),
        (.pickComplete, .pick(orderId: "ORD-1", items: items)),
        (.packComplete, .pack(orderId: "ORD-1", items: items)),
        (.shipComplete, .ship(orderId: "ORD-1", shipmentId: "SHP-1", items: items)),
        (.cycleCountAdjustment, .cycleCount(CycleCount(
            sku: "SKU-1", expectedCount: 100, actualCount: 97, reason: "recount", approvedBy: "supervisor-7", auditId: "AUD-3"))),
        (.damageReport, .damage(reason: "forklift", items: items)),
        (.transferShipped, .transferShipped(transferId: "TR-1", toLocationId: "FC-2", items: items)),
        (.transferReceived, .transferReceived(transferId: "TR-1", fromLocationId: "FC-2", items: items)),
        (.orderConfirmed, .orderConfirmed(orderId: "ORD-1", lines: [
            OrderLine(lineId: "L1", sku: "SKU-1", locationId: "FC-1", quantity: 3, reservationId: "RES-1"),
            OrderLine(lineId: "L2", sku: "SKU-2", locationId: "FC-2", quantity: 1),
        ])),
        (.orderCancelled, .orderCancelled(orderId: "ORD-1", lineIds: ["L1", "L2"])),
    ])
    func decodesEveryType(type: EventType, body: EventBody) throws {
        let event = try Fixtures.event(type)
        #expect(event.type == type)
        #expect(event.body == body)
    }

    @Test func optionalFieldsMayBeAbsentOrNull() throws {
        for absent in [JSONValue?.none, .some(.null)] {
            var receiving = Fixtures.message(.receivingComplete)
            receiving["purchaseOrderId"] = absent
            receiving["source"] = absent
            let event = try Fixtures.event(receiving)
            #expect(event.body == .receiving(purchaseOrderId: nil, items: EventDecoderSuccessTests.items))
            #expect(event.source == nil)

            var count = Fixtures.message(.cycleCountAdjustment)
            count["approvedBy"] = absent
            count["auditId"] = absent
            guard case .cycleCount(let decoded) = try Fixtures.event(count).body else { Issue.record("not a cycle count"); continue }
            #expect(decoded.approvedBy == nil && decoded.auditId == nil)

            var cancel = Fixtures.message(.orderCancelled)
            cancel["lines"] = absent
            #expect(try Fixtures.event(cancel).body == .orderCancelled(orderId: "ORD-1", lineIds: nil))

            var confirm = Fixtures.message(.orderConfirmed)
            confirm["locationId"] = absent
            #expect(try Fixtures.event(confirm).locationId == nil)
        }
    }

    @Test func acceptsLimits() throws {
        var fields = Fixtures.message(.receivingComplete)
        fields["eventId"] = .string(String(repeating: "e", count: 127) + ":")
        fields["locationId"] = .string(String(repeating: "L", count: 32))
        fields["items"] = .array(Array(repeating: [
            "sku": .string(String(repeating: "S", count: 63) + "_"), "quantity": 1_000_000_000,
        ], count: 1_000))
        let event = try Fixtures.event(fields)
        guard case .receiving(_, let items) = event.body else { Issue.record("not receiving"); return }
        #expect(items.count == 1_000)

        var count = Fixtures.message(.cycleCountAdjustment)
        count["expectedCount"] = 0
        count["actualCount"] = 1_000_000_000
        count["reason"] = .string(String(repeating: "é", count: 512))
        #expect(throws: Never.self) { try Fixtures.event(count) }
    }

    @Test func integralNumbersAreIntegers() throws {
        let text = #"{"eventId":"e1","eventType":"RECEIVING_COMPLETE","timestamp":"2024-05-01T12:00:00Z","locationId":"FC-1","items":[{"sku":"A","quantity":5.0},{"sku":"B","quantity":1e3}]}"#
        let decoded = try EventDecoder.decode(Array(text.utf8)).get()
        #expect(decoded.event.body == .receiving(purchaseOrderId: nil, items: [ItemLine(sku: "A", quantity: 5), ItemLine(sku: "B", quantity: 1000)]))
    }

    @Test func canonicalJSONAndDigest() throws {
        let compact = #"{"eventId":"e1","eventType":"RECEIVING_COMPLETE","timestamp":"2024-05-01T12:00:00Z","locationId":"FC-1","items":[{"sku":"A","quantity":5}],"extra":{"y":1,"x":[true]}}"#
        let reordered = """
            {
              "extra": {"x": [true], "y": 1.0},
              "items": [ {"quantity": 5.0, "sku": "A"} ],
              "locationId": "FC-1", "timestamp": "2024-05-01T12:00:00Z",
              "eventType": "RECEIVING_COMPLETE", "eventId": "e1"
            }
            """
        let first = try EventDecoder.decode(Array(compact.utf8)).get()
        let second = try EventDecoder.decode(Array(reordered.utf8)).get()
        let expected = #"{"eventId":"e1","eventType":"RECEIVING_COMPLETE","extra":{"x":[true],"y":1},"items":[{"quantity":5,"sku":"A"}],"locationId":"FC-1","timestamp":"2024-05-01T12:00:00Z"}"#
        #expect(String(decoding: first.canonicalJSON, as: UTF8.self) == expected)
        #expect(first.canonicalJSON == second.canonicalJSON)
        #expect(first.digest == second.digest)
        #expect(first.digest == SHA256.hex(Array(expected.utf8)))
        #expect(first.digest.count == 64)

        // Any field value matters, unknown fields included.
        for changed in [
            compact.replacing(#""quantity":5"#, with: #""quantity":6"#),
            compact.replacing(#""y":1"#, with: #""y":2"#),
            compact.replacing(#","extra":{"y":1,"x":[true]}"#, with: ""),
        ] {
            #expect(try EventDecoder.decode(Array(changed.utf8)).get().digest != first.digest)
        }
    }
}
