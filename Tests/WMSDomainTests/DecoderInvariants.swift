import WMSDomain

/// What the JSON parser and the event decoder promise for any bytes at all,
/// beyond not trapping. The fuzz target (`Fuzz/EventDecoderFuzzer.swift`, built
/// by `scripts/fuzz`, which compiles this file beside it against WMSDomain)
/// checks every input it makes; `FuzzRegressionTests` checks the samples, the
/// fuzzer's seeds and every input it ever failed on (`Fuzz/regressions/`).
/// Plain Swift, no testing library, so that both can use it.
enum DecoderInvariants {
    /// Every property `message` breaks, one sentence each; empty when all hold.
    static func violations(of message: [UInt8]) -> [String] {
        var check = InvariantCheck()
        let parsed = Result { () throws(JSONParseError) in try JSONValue.parse(message) }
        switch parsed {
        case .success(let value):
            check.roundTrip(of: value)
        case .failure(let error):
            check.that((0...message.count).contains(error.offset),
                       "the parse error \"\(error)\" points outside the \(message.count) bytes")
        }
        switch EventDecoder.decode(message) {
        case .success(let decoded):
            check.acceptance(decoded, parsed: try? parsed.get())
        case .failure(let bad):
            check.rejection(bad, messageSize: message.count, parsed: try? parsed.get())
        }
        return check.violations
    }

    /// A bad event's detail goes into a Kafka header and log lines: it stays
    /// short (strings and numbers from the message are cut to 64 characters).
    static let maxDetailBytes = 1_024

    /// The instants `RFC3339.format` is defined for: years 0001 to 9999 in UTC.
    static let formattableInstants = RFC3339.epochMilliseconds("0001-01-01T00:00:00Z")!
        ... RFC3339.epochMilliseconds("9999-12-31T23:59:59.999Z")!
}

private struct InvariantCheck {
    private(set) var violations: [String] = []

    /// The sentence is only built when the property fails: the fuzzer runs this
    /// for every input.
    mutating func that(_ holds: Bool, _ violation: @autoclosure () -> String) {
        if !holds { violations.append(violation()) }
    }

    // MARK: JSON

    /// The canonical form (what digests are taken of) parses back to the same
    /// value and is its own canonical form; the indented form parses back too.
    mutating func roundTrip(of value: JSONValue) {
        let canonical = value.serialized(canonical: true)
        if let reparsed = parse(canonical, "the canonical form") {
            that(reparsed == value, "the canonical form parses to another value: \(Self.excerpt(canonical))")
            // Bytes, not ==: Swift compares strings up to canonical equivalence.
            that(reparsed.serialized(canonical: true) == canonical,
                 "the canonical form is not its own canonical form: \(Self.excerpt(canonical))")
        }
        let indented = value.serialized(canonical: false)
        if let reparsed = parse(indented, "the indented form") {
            that(reparsed == value, "the indented form parses to another value: \(Self.excerpt(indented))")
        }
    }

    private mutating func parse(_ bytes: [UInt8], _ name: String) -> JSONValue? {
        do {
            return try JSONValue.parse(bytes)
        } catch {
            violations.append("\(name) does not parse (\(error)): \(Self.excerpt(bytes))")
            return nil
        }
    }

    // MARK: Decoder

    /// An event comes from a JSON object and carries its envelope as sent; its
    /// canonical JSON decodes to the same event and digest (so a resend spelled
    /// otherwise is the same payload, section 4), and every WMS event has effects.
    mutating func acceptance(_ decoded: DecodedEvent, parsed: JSONValue?) {
        guard let parsed, let fields = parsed.objectValue else {
            violations.append("an event was decoded from a message that is not a JSON object")
            return
        }
        let event = decoded.event
        that(decoded.canonicalJSON == parsed.serialized(canonical: true), "the event's canonicalJSON is not the message's canonical form")
        that(decoded.digest == SHA256.hex(decoded.canonicalJSON), "the event's digest is not the SHA-256 of its canonicalJSON")
        that(fields["eventId"]?.stringValue == event.eventId, "eventId \(event.eventId) is not the message's")
        that(fields["eventType"]?.stringValue == event.type.rawValue, "eventType \(event.type.rawValue) is not the message's")
        that(fields["timestamp"]?.stringValue == event.timestamp, "timestamp \(event.timestamp) is not the message's")
        that(RFC3339.epochMilliseconds(event.timestamp) == event.occurredAtMs,
             "occurredAtMs \(event.occurredAtMs) is not the instant of \(event.timestamp)")
        if DecoderInvariants.formattableInstants.contains(event.occurredAtMs) {
            let formatted = RFC3339.format(epochMilliseconds: event.occurredAtMs)
            that(RFC3339.epochMilliseconds(formatted) == event.occurredAtMs,
                 "\(event.timestamp) formats as \(formatted), which is another instant")
        }
        // A canonical form can outgrow the limit (`1e9` is `1000000000`).
        if decoded.canonicalJSON.count <= EventDecoder.maxMessageBytes {
            that(EventDecoder.decode(decoded.canonicalJSON) == .success(decoded),
                 "the canonical form decodes to another event: \(Self.excerpt(decoded.canonicalJSON))")
        }
        that(event.effects.isEmpty != event.type.isWMS,
             "a \(event.type.rawValue) event has \(event.effects.count) quantity effects")
    }

    /// The code is the one the contract's order of checks gives (size, JSON,
    /// eventType, the rest); the detail fits a header; the eventId is carried
    /// exactly when the message has a valid one, whatever else is wrong.
    mutating func rejection(_ bad: BadEvent, messageSize: Int, parsed: JSONValue?) {
        let fields = parsed?.objectValue
        let expectedCode: BadEventCode
        if messageSize > EventDecoder.maxMessageBytes {
            expectedCode = .tooLarge
        } else if let fields {
            let namesUnknownType = fields["eventType"]?.stringValue.map { EventType(rawValue: $0) == nil } ?? false
            expectedCode = namesUnknownType ? .unknownEventType : .invalidField
        } else {
            expectedCode = .invalidJSON
        }
        that(bad.code == expectedCode, "rejected with \(bad.code.rawValue) where \(expectedCode.rawValue) was due: \(bad)")
        that(!bad.detail.isEmpty, "a \(bad.code.rawValue) rejection has no detail")
        that(bad.detail.utf8.count <= DecoderInvariants.maxDetailBytes,
             "a detail of \(bad.detail.utf8.count) bytes: \(bad.detail.prefix(200))…")
        that(!bad.detail.unicodeScalars.contains(where: Self.breaksALogLine),
             "the detail would break a log line: \(bad.detail.debugDescription)")

        guard let eventId = fields?["eventId"]?.stringValue else {
            that(bad.eventId == nil, "the rejection carries eventId \(bad.eventId ?? "") the message does not have")
            return
        }
        that(bad.eventId == nil || bad.eventId == eventId, "the rejection carries eventId \(bad.eventId ?? ""), not the message's")
        // Whether the eventId is valid is the decoder's to say: alone in a
        // message, the same string must be carried or not just the same.
        let alone = JSONValue.object(["eventId": .string(eventId)]).serialized(canonical: true)
        let carriedAlone: String? = if case .failure(let rejection) = EventDecoder.decode(alone) { rejection.eventId } else { nil }
        that(bad.eventId == carriedAlone,
             "the rejection carries eventId \(bad.eventId.debugDescription), alone it is \(carriedAlone.debugDescription)")
    }

    /// Line breaks and what would hide the rest of a line: what the decoder's
    /// excerpts escape (C0 and C1 controls, DEL, U+2028, U+2029, bidirectional
    /// overrides and isolates).
    private static func breaksALogLine(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    private static func excerpt(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription + (bytes.count > 300 ? "…" : "")
    }
}
