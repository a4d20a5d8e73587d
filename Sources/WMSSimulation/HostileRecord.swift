import Kafka

/// A hostile message as sent: where it landed and what its dead letter must
/// carry. `verify` reads them from the expectation file; the pipeline tests
/// make them as they produce.
public struct HostileRecord: Codable, Sendable, Hashable {
    public struct Header: Codable, Sendable, Hashable {
        public var name: String
        /// Hex; nil for a header without a value.
        public var value: String?
    }

    public var kind: HostileClass
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// Valid classes: the eventId PostgreSQL must hold.
    public var eventId: String?
    /// Hex; nil for no key.
    public var key: String?
    public var headers: [Header]
    /// nil for a Kafka null value.
    public var valueLength: Int?
    public var valueFingerprint: String
    /// Of the first 64 KiB, when the value is longer: what a cut dead letter holds.
    public var cutFingerprint: String?

    /// What the dead-letter topic keeps of a value it refuses whole (section 6).
    public static let cutLength = 64 * 1024

    public init(_ hostile: HostileMessage, at delivery: KafkaDelivery) {
        let value = hostile.message.value
        kind = hostile.kind
        topic = delivery.topic
        partition = delivery.partition
        offset = delivery.offset
        eventId = hostile.eventId
        key = hostile.message.key.map(Self.hex)
        headers = hostile.message.headers.map { Header(name: $0.name, value: $0.value.map(Self.hex)) }
        valueLength = value?.count
        valueFingerprint = Self.fingerprint(value ?? [])
        cutFingerprint = (value?.count ?? 0) > Self.cutLength ? Self.fingerprint(value!.prefix(Self.cutLength)) : nil
    }

    /// "topic/partition/offset": how a dead letter names its source.
    public var position: String { "\(topic)/\(partition)/\(offset)" }

    /// The source a dead letter names in the worker's headers, which follow the
    /// original message's (which may spoof them): the last of each name.
    public static func sourcePosition(of deadLetter: KafkaMessage) -> String? {
        guard let topic = lastHeader("wms.source.topic", of: deadLetter), let partition = lastHeader("wms.source.partition", of: deadLetter),
              let offset = lastHeader("wms.source.offset", of: deadLetter) else { return nil }
        return "\(topic)/\(partition)/\(offset)"
    }

    public static func lastHeader(_ name: String, of message: KafkaMessage) -> String? {
        message.headers.last { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    /// The headers section 6 says the worker adds.
    public static let contractHeaders = ["wms.error.code", "wms.error.detail", "wms.source.topic", "wms.source.partition", "wms.source.offset"]

    /// What is wrong with `deadLetter` as this message's dead letter (section 6):
    /// empty when it is right. A valid message has no right dead letter.
    public func problems(with deadLetter: KafkaMessage) -> [String] {
        let code = Self.lastHeader("wms.error.code", of: deadLetter) ?? "no code"
        guard case .deadLetter(let expectedCode) = kind.outcome else {
            return ["valid input dead-lettered as \(code): \(Self.lastHeader("wms.error.detail", of: deadLetter) ?? "")"]
        }
        var problems: [String] = []
        if code != expectedCode { problems.append("code \(code), expected \(expectedCode)") }
        if (Self.lastHeader("wms.error.detail", of: deadLetter) ?? "").isEmpty { problems.append("no wms.error.detail") }
        let original = headers.map { KafkaHeader(name: $0.name, value: $0.value.map(Self.bytes)) }
        if Array(deadLetter.headers.prefix(original.count)) != original { problems.append("the original headers are not kept first, byte for byte") }
        let added = deadLetter.headers.dropFirst(original.count).map(\.name)
        for name in Self.contractHeaders where added.filter({ $0 == name }).count != 1 {
            problems.append("header \(name) added \(added.filter { $0 == name }.count) times")
        }
        if deadLetter.key.map(Self.hex) != key { problems.append("the original key is not kept") }
        let value = deadLetter.value
        if Self.lastHeader("wms.error.truncated", of: deadLetter) == "true" {
            // Cut because the topic refused it whole: to its first 64 KiB (or, if even
            // that is refused, to nothing).
            let isCut = value.count == Self.cutLength ? Self.fingerprint(value) == cutFingerprint : value.isEmpty && (valueLength ?? 0) > 0
            if !isCut { problems.append("marked truncated, but the value is not the original's first 64 KiB") }
        } else if value.count != valueLength ?? 0 || Self.fingerprint(value) != valueFingerprint {
            // A null value arrives as an empty one: the worker's consumer does not tell them apart.
            problems.append("the value is not the original's bytes (\(value.count) bytes, sent \(valueLength.map(String.init) ?? "null"))")
        }
        return problems
    }

    // MARK: Bytes

    /// FNV-1a, 64 bits, with the length: recognises bytes sent, it is no security digest.
    static func fingerprint(_ bytes: some Collection<UInt8>) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
        }
        return "\(bytes.count):" + String(hash, radix: 16)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 0x10 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).map { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) ?? 0 }
    }
}

/// A hostile message kept back until its original is applied (a conflict on
/// another topic), as the expectation file holds it.
public struct HeldBackMessage: Codable, Sendable {
    public var kind: HostileClass
    public var topic: String
    /// Hex; nil for no key.
    public var key: String?
    /// Hex; nil for a Kafka null value.
    public var value: String?
    public var waitsForEventId: String?

    public init(_ hostile: HostileMessage) {
        kind = hostile.kind
        topic = hostile.message.topic
        key = hostile.message.key.map(HostileRecord.hex)
        value = hostile.message.value.map(HostileRecord.hex)
        waitsForEventId = hostile.waitsForEventId
    }

    public var hostile: HostileMessage {
        HostileMessage(kind: kind, message: KafkaOutboundMessage(topic: topic, key: key.map(HostileRecord.bytes), value: value.map(HostileRecord.bytes)),
                       waitsForEventId: waitsForEventId)
    }
}

/// Per class: what became of the hostile messages sent, for `verify`'s table and the tests.
public struct HostileTally: Sendable {
    public struct Row: Sendable, Hashable {
        public var sent = 0
        /// Distinct messages sent found in the dead-letter topic.
        public var deadLettered = 0
        /// Of those, with the right code, headers, key and value.
        public var right = 0
        /// Found more than once (another messageId for the same source).
        public var doubled = 0
        /// Valid classes: found in PostgreSQL.
        public var applied = 0
        /// The first problem seen, for the report.
        public var example: String?

        /// Whether the class came out as the contract says.
        public func isRight(for kind: HostileClass) -> Bool {
            switch kind.outcome {
            case .deadLetter: deadLettered == sent && right == sent && doubled == 0
            case .applied: applied == sent && deadLettered == 0
            }
        }
    }

    public private(set) var rows: [HostileClass: Row] = [:]

    public init(_ records: some Sequence<HostileRecord>) {
        for record in records { rows[record.kind, default: Row()].sent += 1 }
    }

    /// A message of `record` found in the dead-letter topic: `messageIds` distinct
    /// messageIds seen for its source, the problems of the first.
    public mutating func deadLettered(_ record: HostileRecord, messageIds: Int, problems: [String]) {
        rows[record.kind, default: Row()].deadLettered += 1
        if messageIds > 1 { rows[record.kind, default: Row()].doubled += 1 }
        if problems.isEmpty {
            rows[record.kind, default: Row()].right += 1
        } else if rows[record.kind]?.example == nil {
            rows[record.kind]?.example = "\(record.position): " + problems.joined(separator: "; ")
        }
    }

    public mutating func applied(_ record: HostileRecord) {
        rows[record.kind, default: Row()].applied += 1
    }

    public mutating func notApplied(_ record: HostileRecord) {
        if rows[record.kind]?.example == nil { rows[record.kind]?.example = "\(record.position): eventId \(record.eventId ?? "?") not applied" }
    }

    public var isRight: Bool { rows.allSatisfy { $0.value.isRight(for: $0.key) } }

    /// The table `verify` prints: one line per class sent, then the totals.
    public var lines: [String] {
        var lines = ["hostile input".rightPadded(34) + "expected".rightPadded(20) + "sent".leftPadded(8) + "dead-lettered".leftPadded(15)
                     + "right".leftPadded(8) + "doubled".leftPadded(9) + "applied".leftPadded(9)]
        for kind in HostileClass.allCases {
            guard let row = rows[kind] else { continue }
            let isBad = kind.isBad
            lines.append(kind.rawValue.rightPadded(34) + kind.outcome.description.rightPadded(20) + "\(row.sent)".leftPadded(8)
                         + "\(row.deadLettered)".leftPadded(15) + (isBad ? "\(row.right)" : "-").leftPadded(8)
                         + "\(row.doubled)".leftPadded(9) + (isBad ? "-" : "\(row.applied)").leftPadded(9)
                         + (row.isRight(for: kind) ? "" : "  WRONG") + (row.example.map { "  e.g. \($0)" } ?? ""))
        }
        let bad = rows.filter { $0.key.isBad }.map(\.value)
        let valid = rows.filter { !$0.key.isBad }.map(\.value)
        let sentBad = bad.map(\.sent).reduce(0, +)
        let lost = bad.map { $0.sent - $0.deadLettered }.reduce(0, +) + valid.map { $0.sent - $0.applied }.reduce(0, +)
        lines.append("hostile inputs \(sentBad + valid.map(\.sent).reduce(0, +)): \(sentBad) bad, dead-lettered \(bad.map(\.deadLettered).reduce(0, +)), "
                     + "with the right code and headers \(bad.map(\.right).reduce(0, +)); \(valid.map(\.sent).reduce(0, +)) valid, "
                     + "applied \(valid.map(\.applied).reduce(0, +)), dead-lettered \(valid.map(\.deadLettered).reduce(0, +)); "
                     + "lost \(lost), doubled \(rows.values.map(\.doubled).reduce(0, +))")
        return lines
    }
}

extension String {
    /// Padded with spaces on the right to `width` characters, for a table's column.
    public func rightPadded(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
    /// Padded with spaces on the left to `width` characters, for a table's column of figures.
    public func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
