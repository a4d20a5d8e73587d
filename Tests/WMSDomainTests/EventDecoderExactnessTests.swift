import Foundation
import Testing
import WMSDomain

/// A valid RECEIVING_COMPLETE as text, for what `JSONValue` cannot build: numbers
/// beyond Double and Int64, repeated names. `items` replaces the item list and
/// `extra` adds members at the top level.
private func receiving(items: String = #"[{"sku":"A","quantity":5}]"#, extra: String = "") -> [UInt8] {
    let members = [
        #""eventId":"e1","eventType":"RECEIVING_COMPLETE","timestamp":"2024-05-01T12:00:00Z","locationId":"FC-1""#,
        #""items":\#(items)"#, extra,
    ]
    return Array("{\(members.filter { !$0.isEmpty }.joined(separator: ","))}".utf8)
}

private func quantity(_ number: String) -> [UInt8] {
    receiving(items: #"[{"sku":"A","quantity":\#(number)}]"#)
}

private func digest(ofUnknownField number: String) throws -> String {
    try EventDecoder.decode(receiving(extra: #""x":\#(number)"#)).get().digest
}

private let quantityRule = "must be an integer from 1 to 1000000000"

/// Section 2: unknown fields may hold any valid JSON number, and numbers are
/// compared by their exact decimal value.
@Suite struct EventDecoderNumberTests {
    @Test(arguments: ["1e400", "-1e400", "1e-400", "12345678901234567890", "-12345678901234567890.5", "1E+99999999999999999999", "0.5e-99999999999999999999"])
    func anUnknownFieldMayHoldAnyNumber(number: String) throws {
        let decoded = try EventDecoder.decode(receiving(extra: #""x":\#(number)"#)).get()
        #expect(decoded.event.body == .receiving(purchaseOrderId: nil, items: [ItemLine(sku: "A", quantity: 5)]))
    }

    @Test(arguments: [
        ("1e400", "1e+400"), ("-1e400", "-1e+400"), ("1e-400", "1e-400"), ("12345678901234567890", "1.234567890123456789e+19"),
        ("5.5", "5.5"), ("5.0000000000000001", "5.0000000000000001"), ("0.99999999999999999", "0.99999999999999999"),
        ("1000000000.0000000001", "1000000000.0000000001"), ("1e10", "10000000000"), ("0e400", "0"), ("-1.0", "-1"),
    ])
    func aQuantityOutsideItsRuleIsAnInvalidField(number: String, written: String) {
        #expect(EventDecoder.decode(quantity(number)).failure
            == BadEvent(code: .invalidField, detail: "items[0].quantity: \(quantityRule), got \(written)", eventId: "e1"))
    }

    @Test(arguments: [("5.0", 5), ("5e0", 5), ("500e-2", 5), ("0.5E+1", 5), ("1e9", 1_000_000_000), ("1000000000.000", 1_000_000_000)] as [(String, Int64)])
    func aQuantityWhoseExactValueIsAnIntegerIsThatInteger(number: String, value: Int64) throws {
        let event = try EventDecoder.decode(quantity(number)).get().event
        #expect(event.body == .receiving(purchaseOrderId: nil, items: [ItemLine(sku: "A", quantity: value)]))
    }

    @Test func countsFollowTheSameRule() throws {
        func count(expected: String) -> [UInt8] {
            Array(#"{"eventId":"e1","eventType":"CYCLE_COUNT_ADJUSTMENT","timestamp":"2024-05-01T12:00:00Z","locationId":"FC-1","sku":"A","expectedCount":\#(expected),"actualCount":3,"reason":"r"}"#.utf8)
        }
        for zero in ["0", "-0", "0.0", "0e7"] {
            guard case .cycleCount(let decoded) = try EventDecoder.decode(count(expected: zero)).get().event.body else {
                Issue.record("not a cycle count")
                continue
            }
            #expect(decoded.expectedCount == 0)
        }
        #expect(EventDecoder.decode(count(expected: "1e400")).failure
            == BadEvent(code: .invalidField, detail: "expectedCount: must be an integer from 0 to 1000000000, got 1e+400", eventId: "e1"))
    }

    @Test func integersBeyondInt64AreComparedExactly() throws {
        let first = try EventDecoder.decode(receiving(extra: #""ref":12345678901234567890"#)).get()
        let second = try EventDecoder.decode(receiving(extra: #""ref":12345678901234567891"#)).get()
        #expect(first.digest != second.digest)
        #expect(String(decoding: first.canonicalJSON, as: UTF8.self).contains(#""ref":1.234567890123456789e+19"#))
    }

    @Test(arguments: [
        ["1.0", "1", "1e0", "10e-1", "0.1e1", "100E-2", "1.000"],
        ["12345678901234567890", "12345678901234567890.000", "1.234567890123456789e19", "123456789012345678900e-1"],
        ["0", "-0", "0.0", "-0e5", "0E-400"],
        ["1e400", "10e399", "0.001e403", "1E+400"],
    ])
    func spellingsOfOneValueShareADigest(spellings: [String]) throws {
        let digests = try Set(spellings.map(digest(ofUnknownField:)))
        #expect(digests.count == 1, "\(spellings)")
    }

    @Test(arguments: [
        ("0.1", "0.10000000000000001"), ("5", "5.0000000000000001"), ("9007199254740993.0", "9007199254740992"),
        ("1e400", "1e401"), ("1e-400", "0"), ("1e-400", "2e-400"), ("9223372036854775808", "9223372036854775809"),
        ("1E+99999999999999999999", "1E+99999999999999999998"), ("1e23", "99999999999999991611392"),
    ])
    func differentValuesGetDifferentDigests(first: String, second: String) throws {
        #expect(try digest(ofUnknownField: first) != digest(ofUnknownField: second))
    }

    @Test func aHugeNumberIsCutInTheDetail() {
        let detail = EventDecoder.decode(quantity(String(repeating: "9", count: 10_000))).failure?.detail ?? ""
        #expect(detail.hasPrefix("items[0].quantity: \(quantityRule), got 9.99999"))
        #expect(detail.hasSuffix("…"))
        #expect(detail.count < 200)
    }
}

/// Section 2: an object that repeats a name, anywhere in the message, is not
/// valid input; names are compared after unescaping.
@Suite struct EventDecoderRepeatedNameTests {
    @Test(arguments: [
        (#"{"eventId":"a","eventId":"b","eventType":"RECEIVING_COMPLETE","timestamp":"2024-05-01T12:00:00Z","locationId":"FC-1","items":[{"sku":"A","quantity":5}]}"#, #"duplicate name "eventId" at byte 15"#),
        (#"{"eventId":"a","eventType":"RECEIVING_COMPLETE","eventId":"a","timestamp":"2024-05-01T12:00:00Z","locationId":"FC-1","items":[{"sku":"A","quantity":5}]}"#, #"duplicate name "eventId" at byte 48"#),
        (String(decoding: receiving(items: #"[{"sku":"A","quantity":5,"sku":"B"}]"#), as: UTF8.self), #"duplicate name "sku" at byte 137"#),
        (String(decoding: receiving(items: #"[{"sku":"A","quantity":1},{"sku":"B","quantity":2,"quantity":3}]"#), as: UTF8.self), #"duplicate name "quantity" at byte 162"#),
        (String(decoding: receiving(extra: #""meta":{"a":{"b":1,"b":2}}"#), as: UTF8.self), #"duplicate name "b" at byte 158"#),
        (String(decoding: receiving(extra: #""meta":[[{"k":1},{"k":2,"k":3}]]"#), as: UTF8.self), #"duplicate name "k" at byte 163"#),
        (String(decoding: receiving(extra: #""meta":{"a":1,"\u0061":2}"#), as: UTF8.self), #"duplicate name "a" at byte 153"#),
        (String(decoding: receiving(extra: #""event\u0049d":"e1""#), as: UTF8.self), #"duplicate name "eventId" at byte 139"#),
        (String(decoding: receiving(extra: #""a/b":1,"a\/b":2"#), as: UTF8.self), #"duplicate name "a/b" at byte 147"#),
    ])
    func aRepeatedNameAnywhereIsInvalidJSON(message: String, detail: String) {
        #expect(EventDecoder.decode(Array(message.utf8)).failure == BadEvent(code: .invalidJSON, detail: detail))
    }

    @Test func namesThatOnlyLookAlikeAreDistinct() throws {
        let decoded = try EventDecoder.decode(receiving(extra: #""Sku":1,"sku ":2,"meta":[{"k":1},{"k":2}]"#)).get()
        #expect(String(decoding: decoded.canonicalJSON, as: UTF8.self).contains(#""Sku":1,"eventId":"e1""#))
    }
}

/// PostgreSQL keeps the digests of events applied before: the canonical bytes
/// of ordinary payloads must not change. The digests below were computed by
/// the decoder before numbers became exact.
@Suite struct CanonicalFormStabilityTests {
    @Test(arguments: [
        ("CYCLE_COUNT_ADJUSTMENT-leap-second.json", "ccb6beb3d105df65d56fc3d3ce1e3e4547fdbc6d840fe3ffa99dae717aff202f"),
        ("CYCLE_COUNT_ADJUSTMENT-zero-counts.json", "cd529f401006b8d625c581d5ba33bf5c6e2f0952cc18a330de7d34e73f2c460c"),
        ("CYCLE_COUNT_ADJUSTMENT.json", "097fbcf9cfa3ac5b0bb6dc0c46d3565859531c695fab2b8aad671ddae3e71d86"),
        ("DAMAGE_REPORT-leap-day.json", "d2406c65c4c0efb3bb793c74f82a0c0b867663aaaeabd9cfb9820ca41bc52b45"),
        ("ORDER_CANCELLED-all-lines.json", "07ff4d5f356a9ecf700198835447b813015d40e6b85778a56826146afea09fa3"),
        ("ORDER_CANCELLED-null-lines.json", "292426bd5e8d8283fbcd722c272ff7e2d982f42514e52b9b99cb0924e6699d67"),
        ("ORDER_CANCELLED-some-lines.json", "f22cb03ddfaeb4d18bf4771a3bb5b9bd1b0fc942edd4d97b37c1332e97bf9cbb"),
        ("ORDER_CONFIRMED-1000-lines.json", "ab5b5dacbd30360820c41e0c60b5422a7fe7d7a00f8853fa1161cc0af44b82dc"),
        ("ORDER_CONFIRMED.json", "3b2d24d894c7ec273eef72325863b4515f313ede3efbe7077d4b4cfa9f463aa3"),
        ("PACK_COMPLETE.json", "1226ec34d1b601982e8b0247cca37e20d468926df5620c7d5493b369c0af2aa3"),
        ("PICK_COMPLETE-unknown-fields.json", "be35e7bafb9a661f687f6d0185fd58018074b29259a2150fb4884e2c9ecc1fa8"),
        ("PICK_COMPLETE-whitespace-escapes.json", "0ea5f5b18569b6a2b90d837b44586f9bd911f88feb0178afa2953b8ead6a8250"),
        ("RECEIVING_COMPLETE-1000-items.json", "74b70c293a2a0d82ed671ff5b2a4a45be30cab3f05ad921ca28a6eb71f8cb096"),
        ("RECEIVING_COMPLETE-limits.json", "823785275f5cf95c428a06cca0d89e12d7d224f476cb5cc210dec081964401b4"),
        ("RECEIVING_COMPLETE-optional-nulls.json", "212c05c7986df7bf3d0361d6680d665340b3e7033ccc67ae500f16e29f1bae80"),
        ("RECEIVING_COMPLETE.json", "999b1bf3187c4b02df85fa819919734a5c32f0a0e4ae7071c7a4b645b9baab6f"),
        ("SHIP_COMPLETE-lowercase-t-z-number-forms.json", "ca5e33d582ba5de1cd656328fc9b32daf0da75fb9da68dcebb641db2d70ef1df"),
        ("SHIP_COMPLETE-offset-fraction.json", "917d3fcd616768c1a06d889e25b7d8595189274cb8ab2b1f1c458ac65a897214"),
        ("TRANSFER_RECEIVED.json", "5b354f444a0de2935ec685ce64a65092f3ed2d7f0beeac5ae0332a8051094684"),
        ("TRANSFER_SHIPPED.json", "9e1a1b63e3454a7d353c5a49bec6dce2d567fec11d67882cf38197a3908f9ce3"),
    ])
    func validSamplesKeepTheirDigest(name: String, digest: String) throws {
        #expect(try SampleAgreementTests.decode("valid", name).get().digest == digest)
    }

    @Test func ordinaryEventsKeepTheirCanonicalBytes() throws {
        var count = Fixtures.message(.cycleCountAdjustment)
        count["extra"] = ["ratio": 0.25, "big": 9_007_199_254_740_993, "negative": -7, "values": [1.5, 0.1, -2.5e-7, 1.5e300, 0.0001, 1e-5]]
        #expect(String(decoding: try Fixtures.decode(count).get().canonicalJSON, as: UTF8.self)
            == #"{"actualCount":97,"approvedBy":"supervisor-7","auditId":"AUD-3","eventId":"evt-0001","eventType":"CYCLE_COUNT_ADJUSTMENT","expectedCount":100,"extra":{"big":9007199254740993,"negative":-7,"ratio":0.25,"values":[1.5,0.1,-2.5e-07,1.5e+300,0.0001,1e-05]},"locationId":"FC-1","reason":"recount","sku":"SKU-1","timestamp":"2024-05-01T12:00:00Z"}"#)
        let text = #"{"eventId":"e1","eventType":"RECEIVING_COMPLETE","timestamp":"2024-05-01T12:00:00Z","locationId":"FC-1","items":[{"sku":"A","quantity":5.0},{"sku":"B","quantity":1e3}],"n":[0.10,-0.0,1e19,123e-2]}"#
        #expect(String(decoding: try EventDecoder.decode(Array(text.utf8)).get().canonicalJSON, as: UTF8.self)
            == #"{"eventId":"e1","eventType":"RECEIVING_COMPLETE","items":[{"quantity":5,"sku":"A"},{"quantity":1000,"sku":"B"}],"locationId":"FC-1","n":[0.1,0,1e+19,1.23],"timestamp":"2024-05-01T12:00:00Z"}"#)
    }
}
