import Foundation
import Kafka

/// A change to one SKU at one location in the contract's 7 buckets, in the order
/// of `WarehouseDay.expected`: what a valid hostile message adds to the day.
public struct LevelChange: Sendable, Hashable {
    public var sku: String
    public var location: String
    public var deltas: [Int64]

    static func receipt(_ sku: String, _ location: String, _ quantity: Int64) -> LevelChange {
        LevelChange(sku: sku, location: location, deltas: [quantity, 0, 0, 0, 0, 0, 0])
    }
}

/// One hostile message and what must become of it.
public struct HostileMessage: Sendable {
    public var kind: HostileClass
    /// Topic, key, value (nil: a Kafka null value) and headers; no partition, so
    /// the producer's partitioner places it by its key, as it placed the day.
    public var message: KafkaOutboundMessage
    /// Valid classes: the eventId PostgreSQL holds once it is applied.
    public var eventId: String?
    /// A conflict on another topic: the eventId it conflicts with. The contract
    /// keeps the first payload applied, and nothing orders two topics, so it is
    /// sent only once that event is applied; otherwise either could be the bad one.
    public var waitsForEventId: String?
    /// Valid classes: what applying it changes, and the order lines it confirms.
    public var changes: [LevelChange] = []
    public var orderLines = 0

    /// A valid message with an eventId of its own (a resend repeats one).
    public var isNewEvent: Bool { kind.outcome == .applied && kind != .equivalentResend }
}

/// Hostile input for a generated day: every class of `HostileClass`, each
/// message breaking one rule of the contract (or none, however nasty),
/// deterministic from the seed. Bad messages name the day's SKUs and locations,
/// so one the worker wrongly applied also shows in the day's arithmetic; valid
/// ones work on SKUs of their own, whose arithmetic they carry.
public struct HostileMessages: Sendable {
    /// The contract's limit on a message (section 2): 1 MiB.
    public static let messageLimit = 1_048_576
    /// The largest message of `tooLarge`. The dev broker takes any size (each of
    /// its partitions keeps the last 5 MiB, compressed); a real broker refuses
    /// more than its `message.max.bytes`, 1 MiB by default.
    public static let largestSent = 8 * 1_048_576
    /// How far back a conflict on another topic looks for its original: the
    /// first events of the day, applied within the worker's first batches.
    static let earlyEvents = 256

    private var random: SeededRandom
    private let events: [WarehouseDay.Event]
    private let skus: [String]
    private let locations: [String]
    private let prefix: String
    private let topics: [String]
    private var sequence = 0

    /// `topics`: where hostile messages go (default: the day's topics, at least two).
    public init(seed: UInt64, day: WarehouseDay, topics: [String]? = nil) {
        random = SeededRandom(seed: seed)
        events = day.events
        skus = day.skus
        locations = day.locations
        prefix = day.prefix
        self.topics = topics ?? Array(Set(day.events.map(\.topic))).sorted()
        precondition(!events.isEmpty && self.topics.count >= 2 && locations.count >= 2, "hostile input needs a day, two topics, two locations")
    }

    /// A message of one of `classes`, drawn by weight, among the day's first
    /// `eventIndex + 1` events (a conflict or a resend repeats one of those).
    public mutating func next(from classes: [HostileClass], after eventIndex: Int) -> HostileMessage {
        var draw = random.int(0...(classes.map(\.weight).reduce(0, +) - 1))
        let kind = classes.first { draw -= $0.weight; return draw < 0 }!
        return make(kind, after: eventIndex)
    }

    /// A message of class `kind`, among the day's first `eventIndex + 1` events.
    public mutating func make(_ kind: HostileClass, after eventIndex: Int) -> HostileMessage {
        sequence += 1
        let earlier = events[0...min(eventIndex, events.count - 1)]
        var made = switch kind.outcome {
        case .deadLetter: HostileMessage(kind: kind, message: KafkaOutboundMessage(
            topic: pick(topics), key: hostileKey(), value: badValue(kind, earlier: earlier)))
        case .applied: validMessage(kind, earlier: earlier)
        }
        switch kind {
        case .headersOnly:
            made.message.value = nil
            made.message.headers = headersOnly()
        case .conflictOnItsPartition:
            // Its original's topic and key: the partitioner puts it on the same
            // partition, after the original, so the original is applied first.
            let original = pick(earlier)
            made.message = KafkaOutboundMessage(topic: original.topic, key: Array(original.id.utf8), value: Array(changedPayload(original).utf8))
        case .conflictOnAnotherTopic:
            let original = pick(earlier.prefix(Self.earlyEvents))
            made.message = KafkaOutboundMessage(topic: pick(topics.filter { $0 != original.topic }), key: hostileKey(),
                                                value: Array(changedPayload(original).utf8))
            made.waitsForEventId = original.id
        default:
            break
        }
        return made
    }

    // MARK: Bad messages

    private var badID: String { "\(prefix)H-\(sequence)" }

    private mutating func badValue(_ kind: HostileClass, earlier: ArraySlice<WarehouseDay.Event>) -> [UInt8] {
        let (id, sku, location) = (badID, pick(skus), pick(locations))
        let receipt = receiving(id, sku: sku, location: location)
        switch kind {
        case .truncatedJSON:
            let whole = Array(Self.object(receipt).utf8)
            return Array(whole.prefix(random.int(1...(whole.count - 1))))
        case .invalidUTF8:
            let bytes = pick([[0xFF], [0xFE], [0xC3, 0x28], [0x80], [0xBF], [0xE2, 0x82], [0xF5, 0x80, 0x80, 0x80],
                              [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80]] as [[UInt8]])
            return rawBytes(bytes, in: receipt, outsideStrings: true)
        case .overlongUTF8:
            // '/', U+007F, '/' in 3 and 4 bytes, NUL as modified UTF-8 writes it, U+07FF, U+FFFF.
            let bytes = pick([[0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xF0, 0x80, 0x80, 0xAF], [0xC0, 0x80],
                              [0xE0, 0x9F, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF]] as [[UInt8]])
            return rawBytes(bytes, in: receipt, outsideStrings: false)
        case .loneSurrogate:
            if random.chance(0.3) {
                // A surrogate encoded as UTF-8 (CESU-8): not UTF-8.
                return rawBytes(pick([[0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xED, 0xB0, 0x80]] as [[UInt8]]), in: receipt, outsideStrings: false)
            }
            let escape = pick([#"\uD800"#, #"\uDBFF"#, #"\uDC00"#, #"\udfff"#, #"\uD800\u0041"#, #"\uDC00\uD800"#, #"\uD800\uD800"#, #"\uD83D"#])
            return Array(Self.object(insertingIntoAString(escape, receipt)).utf8)
        case .controlCharacter:
            return rawBytes(pick([[0x00], [0x01], [0x0A], [0x0D], [0x09], [0x1B], [0x1F]] as [[UInt8]]), in: receipt, outsideStrings: false)
        case .byteOrderMark:
            let text = Array(Self.object(receipt).utf8)
            switch random.int(0...3) {
            case 0: return [0xEF, 0xBB, 0xBF] + text
            case 1: return [0xEF, 0xBB, 0xBF, 0xEF, 0xBB, 0xBF] + text
            case 2: return [0xFE, 0xFF] + text
            default: return [0xFF, 0xFE] + text.flatMap { [$0, 0] } // UTF-16LE, with its byte order mark
            }
        case .deepNesting:
            let depth = pick([64, 65, 200, 5_000, 100_000])
            let nested = random.chance(0.5) ? String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
                : String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth)
            // The message is the outermost level: the ignored field's value starts at level 2.
            return Array(Self.object(receipt + [("x", nested)]).utf8)
        case .duplicateKey:
            let item = [("sku", Self.quoted(sku)), ("quantity", "3")]
            let members: [(String, String)] = switch random.int(0...5) {
            case 0: receipt + [("eventId", Self.quoted(id))]
            case 1: replacing("items", with: "[" + Self.object(item + [("quantity", "3")]) + "]", in: receipt)
            case 2: replacing("items", with: "[{" + #""sku":"# + Self.quoted(sku) + #","\u0073ku":"# + Self.quoted(sku) + #","quantity":3}]"#, in: receipt)
            case 3: receipt + [("items", "[" + Self.object(item) + "]")]
            case 4: receipt + [("meta", #"{"a":1,"b":{"c":2,"c":2}}"#)]
            default: receipt.map { $0.0 == "eventType" ? (#"event\u0054ype"#, $0.1) : $0 } + [("eventType", Self.quoted("RECEIVING_COMPLETE"))]
            }
            return Array(Self.object(members, namesAreJSON: true).utf8)
        case .notAnObject:
            return Array(pick(["[1,2,3]", #""RECEIVING_COMPLETE""#, "42", "true", "false", "-0", #""""#, "[" + Self.object(receipt) + "]"]).utf8)
        case .emptyValue:
            return Array(pick(["", " ", "\n\t \r\n"]).utf8)
        case .nullValue:
            return Array(pick(["null", " null\n"]).utf8)
        case .headersOnly:
            return []
        case .numberOutOfRange:
            if random.chance(0.25) {
                // A count may be 0, so only what is outside 0...1,000,000,000.
                let bad = pick(["-1", "1000000001", "1e400", "-1e400", "12345678901234567890"])
                let inExpected = random.chance(0.5)
                return Array(Self.object(cycleCount(id, sku: sku, location: location, expected: inExpected ? bad : "5",
                                                    actual: inExpected ? "5" : bad)).utf8)
            }
            let quantity = pick(["0", "-1", "-0", "0.0", "1000000001", "1e400", "1e-400", "12345678901234567890", "-9223372036854775809",
                                 "9223372036854775808", "1E10", "4294967297"])
            return Array(Self.object(receiving(id, sku: sku, location: location, quantity: quantity)).utf8)
        case .notAnInteger:
            if random.chance(0.2) {
                let count = pick([#""10""#, "10.5", "null", "[10]"])
                return Array(Self.object(cycleCount(id, sku: sku, location: location, expected: count, actual: "10")).utf8)
            }
            let quantity = pick(["2.5", #""5""#, "true", "false", "[5]", #"{"value":5}"#, "1.0000000000000000001", "5.5e0", #""""#, "1e-1",
                                 "0.99999999999999999999999"])
            return Array(Self.object(receiving(id, sku: sku, location: location, quantity: quantity)).utf8)
        case .emptyField:
            let members: [(String, String)] = switch random.int(0...7) {
            case 0: replacing("eventId", with: #""""#, in: receipt)
            case 1: receiving(id, sku: "", location: location)
            case 2: replacing("locationId", with: #""""#, in: receipt)
            case 3: replacing("items", with: "[]", in: receipt)
            case 4: replacing("reason", with: #""""#, in: damage(id, sku: sku, location: location, reason: "x"))
            case 5: replacing("orderId", with: #""""#, in: pickComplete(id, sku: sku, location: location, order: "O-1"))
            case 6: replacing("lines", with: "[]", in: confirmation(id, order: "\(prefix)HO-\(sequence)", lines: [("1", sku, location, "1")]))
            default: []
            }
            return Array(Self.object(members).utf8)
        case .nullField:
            let members: [(String, String)] = switch random.int(0...6) {
            case 0: replacing(pick(["eventId", "eventType", "timestamp", "locationId", "items"]), with: "null", in: receipt)
            case 1: receiving(id, sku: sku, location: location, skuJSON: "null")
            case 2: receiving(id, sku: sku, location: location, quantity: "null")
            case 3: replacing("reason", with: "null", in: damage(id, sku: sku, location: location, reason: "x"))
            case 4: replacing("orderId", with: "null", in: pickComplete(id, sku: sku, location: location, order: "O-1"))
            case 5: replacing("expectedCount", with: "null", in: cycleCount(id, sku: sku, location: location, expected: "1", actual: "1"))
            default:
                replacing("transferId", with: "null",
                          in: transfer(id, sku: sku, from: location, to: otherLocation(than: location), transferId: "T-1"))
            }
            return Array(Self.object(members).utf8)
        case .badId:
            return Array(Self.object(withBadId(receipt, id: id, sku: sku, location: location, bad: pick([
                "{x}", "}", "{", #"\"q"#, " sp", #"\u0000"#, "|", "é", #"\t"#, "/", #"\\"#, "#", "@", "+", "\u{202E}", "%2D",
            ]))).utf8)
        case .injectionInId:
            let fragment = Self.quoted(pick(Self.injections))
            return Array(Self.object(withBadId(receipt, id: id, sku: sku, location: location, bad: String(fragment.dropFirst().dropLast()))).utf8)
        case .badTimestamp:
            let timestamp = pick([#""27/11/2026""#, #""2026-11-27T10:00:00""#, #""2026-02-30T10:00:00Z""#, #""2026-13-01T00:00:00Z""#,
                                  "1764237600000", #""yesterday""#, #""2026-11-27T10:00:00+24:00""#, #""2026-11-27T25:00:00Z""#, #""""#,
                                  #""2026-11-27T10:00:00.Z""#, #""2026-11-27 10:00:00Z""#])
            return Array(Self.object(replacing("timestamp", with: timestamp, in: receipt)).utf8)
        case .oversizedField:
            // About a mebibyte of a field whose rule is far shorter, the whole within the limit.
            let field = pick(["reason", "sku", "eventId"])
            let template = field == "reason" ? damage(id, sku: sku, location: location, reason: "") : receipt
            let size = Self.messageLimit - random.int(0...4096)
            let base = Self.object(field == "sku" ? receiving(id, sku: "", location: location) : replacing(field, with: #""""#, in: template))
            let filler = Self.filler(size - base.utf8.count)
            return Array(Self.object(field == "sku" ? receiving(id, sku: filler, location: location)
                                         : replacing(field, with: Self.quoted(filler), in: template)).utf8)
        case .unknownEventType:
            let type = pick(["INVENTORY_TELEPORTED", "receiving_complete", "RECEIVING_COMPLETE ", " RECEIVING_COMPLETE", "RECEIVING-COMPLETE",
                             "Receiving_Complete", "ORDER_SHIPPED", "RECEIVING_COMPLETE\u{0}", "DROP TABLE inventory_levels", ""])
            return Array(Self.object(replacing("eventType", with: Self.quoted(type), in: receipt)).utf8)
        case .tooLarge:
            let size = random.chance(1.0 / 16) ? Self.largestSent
                : Self.messageLimit + 1 + (random.chance(0.5) ? 0 : random.int(0...(Self.messageLimit / 2)))
            return Array(Self.object(padded(receipt, to: size)).utf8)
        case .conflictOnItsPartition, .conflictOnAnotherTopic:
            return [] // made from their original, by `make`
        default:
            preconditionFailure("\(kind) is not a bad class")
        }
    }

    /// SQL and Lua an attacker would try: each holds a character no id may.
    static let injections = [
        "x'); DROP TABLE inventory_levels; --", "1' OR '1'='1", "'; DELETE FROM inventory_events; --", "*/ DROP TABLE outbox; /*",
        "'||pg_sleep(10)||'", "]] redis.call('FLUSHALL') --[[", #"redis.call("DEL", KEYS[1])"#, #"") return redis.call('FLUSHDB') --"#,
        "$(rm -rf /)", "%s%s%n", "${jndi:ldap://x}",
    ]

    /// The message with `bad` in one of its ids (as JSON text inside the quotes):
    /// the eventId, the SKU, the location, or an id of a pick, an order or a transfer.
    private mutating func withBadId(_ receipt: [(String, String)], id: String, sku: String, location: String, bad: String) -> [(String, String)] {
        let location2 = otherLocation(than: location)
        switch random.int(0...7) {
        case 0: return replacing("eventId", with: #"""# + id + bad + #"""#, in: receipt)
        case 1: return receiving(id, sku: sku, location: location, skuJSON: #"""# + sku + bad + #"""#)
        case 2: return replacing("locationId", with: #""FC"# + bad + #"""#, in: receipt)
        case 3: return replacing("orderId", with: #""O-"# + bad + #"""#, in: pickComplete(id, sku: sku, location: location, order: "O-1"))
        case 4:
            let lines = [("1", sku, location, "1")]
            return replacing("lines", with: "[" + Self.object([("lineId", #""L"# + bad + #"""#), ("sku", Self.quoted(sku)),
                                                               ("locationId", Self.quoted(location)), ("quantity", "1")]) + "]",
                             in: confirmation(id, order: "\(prefix)HO-\(sequence)", lines: lines))
        case 5: return replacing("transferId", with: #""T-"# + bad + #"""#, in: transfer(id, sku: sku, from: location, to: location2, transferId: "T-1"))
        case 6:
            // One character too many, or a colon where none is allowed.
            return pick([
                replacing("eventId", with: Self.quoted(Self.padded(id, to: 129)), in: receipt),
                receiving(id, sku: Self.padded(sku, to: 65), location: location),
                replacing("locationId", with: Self.quoted(Self.padded("FC", to: 33)), in: receipt),
                receiving(id, sku: sku + ":1", location: location),
                replacing("locationId", with: Self.quoted(location + ":1"), in: receipt),
            ])
        default:
            return replacing("toLocationId", with: #""FC"# + bad + #"""#,
                             in: transfer(id, sku: sku, from: location, to: location2, transferId: "T-1"))
        }
    }

    /// The message's bytes with `bytes` inside one of its strings (an ignored
    /// field's, the SKU, the eventId) or, when allowed, between two members.
    private mutating func rawBytes(_ bytes: [UInt8], in members: [(String, String)], outsideStrings: Bool) -> [UInt8] {
        let placement = random.int(0...(outsideStrings ? 3 : 2))
        let marked: [(String, String)] = switch placement {
        case 0: members + [("note", Self.quoted("before\(Self.rawMarker)after"))]
        case 1: members.map { $0.0 == "items" ? ($0.0, $0.1.replacingFirst(#""sku":""#, with: #""sku":""# + String(Self.rawMarker))) : $0 }
        case 2: members.map { $0.0 == "eventId" ? ($0.0, Self.quoted(badID + String(Self.rawMarker))) : $0 }
        default: members + [("note", "1 \(Self.rawMarker)")]
        }
        return Self.splice(Self.object(marked), bytes)
    }

    /// The members with `escape` (JSON text) inside an ignored field's string or the SKU.
    private mutating func insertingIntoAString(_ escape: String, _ members: [(String, String)]) -> [(String, String)] {
        random.chance(0.5) ? members + [("note", #""left "# + escape + #" right""#)]
            : members.map { $0.0 == "items" ? ($0.0, $0.1.replacingFirst(#""sku":""#, with: #""sku":""# + escape)) : $0 }
    }

    private mutating func headersOnly() -> [KafkaHeader] {
        let all = [
            KafkaHeader(name: "traceparent", string: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            // The worker's own headers, spoofed: the dead letter keeps them, before its own.
            KafkaHeader(name: "wms.error.code", string: "NOT_AN_ERROR"),
            KafkaHeader(name: "wms.source.offset", string: "-1"),
            KafkaHeader(name: "empty", value: []),
            KafkaHeader(name: "absent", value: nil),
            KafkaHeader(name: "binary", value: [0x00, 0xFF, 0xFE, 0x7B]),
        ]
        return all.filter { _ in random.chance(0.6) } + [all[0]]
    }

    /// The key: none, the eventId, or bytes that are no text.
    private mutating func hostileKey() -> [UInt8]? {
        switch random.int(0...2) {
        case 0: nil
        case 1: Array(badID.utf8)
        default: [0x00, 0xFF, 0x7B, 0x7D, 0x3A, UInt8(truncatingIfNeeded: sequence)]
        }
    }

    /// The same eventId with another payload: another value of a field the
    /// worker reads, or one more field it ignores (which still makes it another).
    private mutating func changedPayload(_ original: WarehouseDay.Event) -> String {
        let json = original.json
        if random.chance(0.5), let range = json.range(of: #""timestamp":""#),
           let end = json[range.upperBound...].firstIndex(of: "\"") {
            return json.replacingCharacters(in: range.upperBound..<end, with: "2026-11-28T00:00:00Z")
        }
        return "{" + #""resentWith":"another payload \#(sequence)","# + json.dropFirst()
    }

    // MARK: Valid messages

    private var validID: String { "\(prefix)HV-\(sequence)" }

    /// SKUs of the valid hostile messages: every character the rule allows.
    private var nastySKUs: [String] { (0..<4).map { "\(prefix)N.\($0)_-" } }
    private var longestSKU: String { Self.padded("\(prefix)LONG", to: 64) }
    private static let longestLocation = padded("FC", to: 32)

    private mutating func validMessage(_ kind: HostileClass, earlier: ArraySlice<WarehouseDay.Event>) -> HostileMessage {
        let (sku, location) = (pick(nastySKUs), pick(locations))
        let quantity = Int64(random.int(1...50))
        var changes = [LevelChange.receipt(sku, location, quantity)]
        var orderLines = 0
        var eventId = validID
        let members: [(String, String)]
        var text: String?
        switch kind {
        case .colonIds:
            eventId = "\(prefix)HV:\(sequence):a::b:"
            switch random.int(0...3) {
            case 0:
                members = replacing("purchaseOrderId", with: Self.quoted("PO:\(sequence)::x"),
                                    in: receiving(eventId, sku: sku, location: location, quantity: "\(quantity)"))
            case 1:
                let order = "\(prefix)ORD:\(sequence):x:"
                members = confirmation(eventId, order: order, lines: [("1:1", sku, location, "\(quantity)"), ("1:2", pick(nastySKUs), location, "1")])
                changes = []
                orderLines = 2
            case 2:
                members = pickComplete(eventId, sku: sku, location: location, order: "\(prefix)ORD:\(sequence)", quantity: "\(quantity)")
                changes = [LevelChange(sku: sku, location: location, deltas: [-quantity, -quantity, 0, 0, quantity, 0, 0])]
            default:
                let destination = otherLocation(than: location)
                members = transfer(eventId, sku: sku, from: location, to: destination, transferId: "TR:\(sequence)::", quantity: "\(quantity)")
                changes = [LevelChange(sku: sku, location: location, deltas: [-quantity, 0, 0, 0, 0, 0, quantity]),
                           LevelChange(sku: sku, location: destination, deltas: [0, 0, 0, 0, 0, quantity, 0])]
            }
        case .boundaryValues:
            switch random.int(0...4) {
            case 0:
                eventId = Self.padded(eventId + ":", to: 128)
                members = receiving(eventId, sku: longestSKU, location: Self.longestLocation, quantity: "1000000000")
                changes = [.receipt(longestSKU, Self.longestLocation, 1_000_000_000)]
            case 1:
                let items = (0..<1_000).map { Self.object([("sku", Self.quoted(nastySKUs[$0 % 4])), ("quantity", "1")]) }
                members = replacing("items", with: "[" + items.joined(separator: ",") + "]", in: receiving(eventId, sku: sku, location: location))
                changes = nastySKUs.map { .receipt($0, location, 250) }
            case 2:
                // A transfer to its own location: nothing forbids it; both ends land on one key.
                members = transfer(eventId, sku: sku, from: location, to: location, transferId: "TR-\(sequence)", quantity: "\(quantity)")
                changes = [LevelChange(sku: sku, location: location, deltas: [-quantity, 0, 0, 0, 0, quantity, quantity])]
            default:
                // A count may be 0, and up to the largest quantity; no variance, no alert.
                let count = random.chance(0.5) ? "0" : "1000000000"
                members = cycleCount(eventId, sku: sku, location: location, expected: count, actual: count)
                changes = [LevelChange(sku: sku, location: location, deltas: [0, 0, 0, 0, 0, 0, 0])]
            }
        case .hugeNumbersInUnknownFields:
            let numbers = ["1e400", "-1e-400", "12345678901234567890123456789", "-0", "0.000000000000000000000000001", "1E+9999999999999999999999",
                           "[1e308,1e309,-1e309]", "123456789012345678901234567890e-30", "1" + String(repeating: "0", count: 1_000)]
            members = receiving(eventId, sku: sku, location: location, quantity: "\(quantity)")
                + (0..<3).map { ("n\($0)", pick(numbers)) }
        case .integralFloats:
            let (spelling, value) = pick([("5.0", 5), ("5E0", 5), ("0.5e1", 5), ("500e-2", 5), ("5.000", 5), ("50000000000e-10", 5),
                                          ("0.0005e4", 5), ("1.0e9", 1_000_000_000), ("1E+0", 1)] as [(String, Int64)])
            members = receiving(eventId, sku: sku, location: location, quantity: spelling)
            changes = [.receipt(sku, location, value)]
        case .escapedText:
            if random.chance(0.5) {
                // Ids, SKU, location and type with \u escapes: the same values once read.
                members = [("eventId", Self.escaping(eventId)), ("eventType", #""RECEIVING\u005fCOMPLETE""#),
                           ("timestamp", #""2026-11-27T12:00:00\u002B01:00""#), ("locationId", Self.escaping(location)),
                           ("source", #""\u0077ms""#), ("items", "[" + Self.object([("sku", Self.escaping(sku)), ("quantity", "\(quantity)")]) + "]"),
                           ("note", #""\u0000 \ufeff \/ \ud83d\udce6""#)]
            } else {
                let reason = "📦 crushed \u{202E}tellap\u{202C} \u{2028}\u{2029}\u{FEFF} ünïcödé 𝄞 \\ \" '"
                members = damage(eventId, sku: sku, location: location, reason: reason, quantity: "\(quantity)")
                changes = [LevelChange(sku: sku, location: location, deltas: [-quantity, 0, 0, quantity, 0, 0, 0])]
            }
        case .injectionInText:
            members = damage(eventId, sku: sku, location: location, reason: pick(Self.injections), quantity: "\(quantity)")
                + [("comment", Self.quoted(pick(Self.injections))), ("x'); DROP TABLE inventory_events; --", "1")]
            changes = [LevelChange(sku: sku, location: location, deltas: [-quantity, 0, 0, quantity, 0, 0, 0])]
        case .deepestAllowed:
            // The message is level 1, the ignored field's 63 levels make 64.
            let nested = random.chance(0.5) ? String(repeating: "[", count: 63) + "1" + String(repeating: "]", count: 63)
                : String(repeating: #"{"a":"#, count: 63) + "1" + String(repeating: "}", count: 63)
            members = receiving(eventId, sku: sku, location: location, quantity: "\(quantity)") + [("x", nested)]
        case .nullOptionals:
            switch random.int(0...3) {
            case 0:
                members = replacing("source", with: "null", in: replacing("purchaseOrderId", with: "null",
                                                                          in: receiving(eventId, sku: sku, location: location, quantity: "\(quantity)")))
                    + [("ignored", "null")]
            case 1:
                members = replacing("shipmentId", with: "null", in: ship(eventId, sku: sku, location: location, quantity: "\(quantity)"))
                changes = [LevelChange(sku: sku, location: location, deltas: [0, 0, 0, 0, -quantity, 0, 0])]
            case 2:
                members = replacing("auditId", with: "null", in: replacing("approvedBy", with: "null",
                                                                         in: cycleCount(eventId, sku: sku, location: location, expected: "0", actual: "0")))
                changes = [LevelChange(sku: sku, location: location, deltas: [0, 0, 0, 0, 0, 0, 0])]
            default:
                members = confirmation(eventId, order: "\(prefix)HO-\(sequence)", lines: [("1", sku, location, "1")], nullOptionals: true)
                changes = []
                orderLines = 1
            }
        case .largestAllowed:
            members = padded(receiving(eventId, sku: sku, location: location, quantity: "\(quantity)"), to: Self.messageLimit)
        case .equivalentResend:
            let original = pick(earlier)
            eventId = original.id
            changes = []
            members = []
            text = Self.reformatted(original)
        default:
            preconditionFailure("\(kind) is not a valid class")
        }
        let value = Array((text ?? Self.object(members)).utf8)
        let topic = pick(topics)
        let key = random.chance(0.5) ? Array(eventId.utf8) : nil
        return HostileMessage(kind: kind, message: KafkaOutboundMessage(topic: topic, key: key, value: value),
                              eventId: eventId, changes: changes, orderLines: orderLines)
    }

    /// The same event as another JSON text: its eventId moved last and written
    /// with escapes, under an escaped name, with whitespace. The same payload.
    static func reformatted(_ event: WarehouseDay.Event) -> String {
        let head = #"{"eventId":"\#(event.id)","#
        guard event.json.hasPrefix(head) else { return " \n" + event.json + "\t\r\n" }
        let rest = event.json.dropFirst(head.count).dropLast()
        return "{ \n\t" + rest + " ,\r\n " + #""event\u0049d""# + " :\t" + escaping(event.id) + " }"
    }

    // MARK: Events

    private func envelope(_ id: String, _ type: String, location: String?) -> [(String, String)] {
        [("eventId", Self.quoted(id)), ("eventType", Self.quoted(type)), ("timestamp", #""2026-11-27T12:00:00Z""#)]
            + (location.map { [("locationId", Self.quoted($0))] } ?? []) + [("source", location == nil ? #""order_service""# : #""wms""#)]
    }

    private func items(_ sku: String, _ quantity: String, skuJSON: String? = nil) -> String {
        "[" + Self.object([("sku", skuJSON ?? Self.quoted(sku)), ("quantity", quantity)]) + "]"
    }

    private func receiving(_ id: String, sku: String, location: String, quantity: String = "3", skuJSON: String? = nil) -> [(String, String)] {
        envelope(id, "RECEIVING_COMPLETE", location: location)
            + [("purchaseOrderId", Self.quoted("PO-1")), ("items", items(sku, quantity, skuJSON: skuJSON))]
    }

    private func damage(_ id: String, sku: String, location: String, reason: String, quantity: String = "1") -> [(String, String)] {
        envelope(id, "DAMAGE_REPORT", location: location) + [("reason", Self.quoted(reason)), ("items", items(sku, quantity))]
    }

    private func pickComplete(_ id: String, sku: String, location: String, order: String, quantity: String = "1") -> [(String, String)] {
        envelope(id, "PICK_COMPLETE", location: location) + [("orderId", Self.quoted(order)), ("items", items(sku, quantity))]
    }

    private func ship(_ id: String, sku: String, location: String, quantity: String) -> [(String, String)] {
        envelope(id, "SHIP_COMPLETE", location: location)
            + [("orderId", Self.quoted("\(prefix)HO-\(sequence)")), ("shipmentId", Self.quoted("SH-1")), ("items", items(sku, quantity))]
    }

    private func cycleCount(_ id: String, sku: String, location: String, expected: String, actual: String) -> [(String, String)] {
        envelope(id, "CYCLE_COUNT_ADJUSTMENT", location: location)
            + [("sku", Self.quoted(sku)), ("expectedCount", expected), ("actualCount", actual), ("reason", #""cycle count""#),
               ("approvedBy", #""lead-3""#), ("auditId", #""AUD-1""#)]
    }

    private func transfer(_ id: String, sku: String, from: String, to: String, transferId: String, quantity: String = "1") -> [(String, String)] {
        envelope(id, "TRANSFER_SHIPPED", location: from)
            + [("transferId", Self.quoted(transferId)), ("toLocationId", Self.quoted(to)), ("items", items(sku, quantity))]
    }

    private func confirmation(_ id: String, order: String, lines: [(lineId: String, sku: String, location: String, quantity: String)],
                              nullOptionals: Bool = false) -> [(String, String)] {
        let body = lines.map {
            Self.object([("lineId", Self.quoted($0.lineId)), ("sku", Self.quoted($0.sku)), ("locationId", Self.quoted($0.location)),
                         ("quantity", $0.quantity)] + (nullOptionals ? [("reservationId", "null")] : []))
        }
        return envelope(id, "ORDER_CONFIRMED", location: nil) + (nullOptionals ? [("locationId", "null")] : [])
            + [("orderId", Self.quoted(order)), ("lines", "[" + body.joined(separator: ",") + "]")]
    }

    /// The members with an ignored field making the message exactly `size` bytes.
    private func padded(_ members: [(String, String)], to size: Int) -> [(String, String)] {
        let base = Self.object(members + [("pad", #""""#)]).utf8.count
        return members + [("pad", Self.quoted(Self.filler(size - base)))]
    }

    private func replacing(_ name: String, with json: String, in members: [(String, String)]) -> [(String, String)] {
        members.map { $0.0 == name ? ($0.0, json) : $0 }
    }

    private mutating func otherLocation(than location: String) -> String {
        pick(locations.filter { $0 != location })
    }

    private mutating func pick<C: Collection>(_ options: C) -> C.Element where C.Index == Int {
        options[options.startIndex + random.int(0...(options.count - 1))]
    }

    // MARK: JSON text

    /// Stands for raw bytes spliced into JSON text (a private-use character no template holds).
    static let rawMarker: Character = "\u{E000}"

    /// JSON text of an object with these members in this order. Names are quoted
    /// unless `namesAreJSON` (to write one with escapes); values are JSON text.
    static func object(_ members: [(String, String)], namesAreJSON: Bool = false) -> String {
        "{" + members.map { (name, value) in
            (namesAreJSON && name.contains("\\") ? "\"\(name)\"" : quoted(name)) + ":" + value
        }.joined(separator: ",") + "}"
    }

    /// JSON text of a string: quotes, backslashes and control characters escaped.
    static func quoted(_ text: String) -> String {
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += #"\""#
            case "\\": quoted += #"\\"#
            case let control where control.value < 0x20:
                quoted += #"\u00"# + (control.value < 0x10 ? "0" : "") + String(control.value, radix: 16)
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
    }

    /// JSON text of an ASCII id with every other character after the first written as a \u escape.
    static func escaping(_ id: String) -> String {
        "\"" + id.unicodeScalars.enumerated().map { index, scalar in
            guard index % 2 == 1 else { return String(scalar) }
            let hex = String(scalar.value, radix: 16)
            return #"\u"# + String(repeating: "0", count: 4 - hex.count) + hex
        }.joined() + "\""
    }

    /// `text` padded with allowed id characters to `length`.
    static func padded(_ text: String, to length: Int) -> String {
        text + filler(length - text.utf8.count, pattern: "._-0123456789")
    }

    /// `count` ASCII bytes of a short repeated pattern: compressible, so a mebibyte
    /// of it costs the dev broker little.
    static func filler(_ count: Int, pattern: String = "hostile padding ") -> String {
        let count = max(0, count)
        return String(repeating: pattern, count: count / pattern.utf8.count) + pattern.prefix(count % pattern.utf8.count)
    }

    static func splice(_ text: String, _ raw: [UInt8]) -> [UInt8] {
        let parts = text.split(separator: rawMarker, omittingEmptySubsequences: false)
        precondition(parts.count == 2, "one marker")
        return Array(parts[0].utf8) + raw + Array(parts[1].utf8)
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
