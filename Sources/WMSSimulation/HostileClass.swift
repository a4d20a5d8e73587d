/// What the contract says must become of a hostile message: section 6 for a bad
/// one, sections 2 and 4 for one that is valid however nasty.
public enum HostileOutcome: Sendable, Hashable, CustomStringConvertible {
    /// A bad event: in the dead-letter topic once, with this `wms.error.code`.
    case deadLetter(code: String)
    /// Valid: applied exactly once (a resend of an applied event: not again), its
    /// effects in the day's arithmetic.
    case applied

    public var description: String {
        switch self {
        case .deadLetter(let code): code
        case .applied: "applied"
        }
    }
}

/// The classes of hostile input (issue 11), each with the outcome the contract
/// gives it. A bad message breaks exactly one rule, so that its code is the
/// contract's and not a matter of which check runs first; a valid one is as
/// nasty as the rules allow.
public enum HostileClass: String, CaseIterable, Sendable, Codable {
    // Not JSON, not UTF-8, not an object: INVALID_JSON.
    case truncatedJSON = "truncated-json"
    case invalidUTF8 = "invalid-utf8"
    case overlongUTF8 = "overlong-utf8"
    case loneSurrogate = "lone-surrogate"
    /// A raw control character (NUL among them) inside a string.
    case controlCharacter = "control-character"
    case byteOrderMark = "byte-order-mark"
    /// Deeper than the worker's 64 levels, in a field it would ignore.
    case deepNesting = "deep-nesting"
    case duplicateKey = "duplicate-key"
    case notAnObject = "not-an-object"
    /// A value of no bytes, or only whitespace.
    case emptyValue = "empty-value"
    /// The JSON literal `null` as the whole message.
    case nullValue = "null-value"
    /// A Kafka null value (a tombstone) with headers, some of them spoofing the worker's own.
    case headersOnly = "headers-only"

    // A field missing, of the wrong type or outside its rule: INVALID_FIELD.
    /// Huge, tiny, negative or zero numbers where a quantity or count belongs.
    case numberOutOfRange = "number-out-of-range"
    /// Floats, strings, booleans, arrays and objects where an integer belongs.
    case notAnInteger = "not-an-integer"
    case emptyField = "empty-field"
    case nullField = "null-field"
    /// Ids and SKUs with braces, quotes, spaces, NUL, `|`, non-ASCII, a colon
    /// where none is allowed, or one character too many.
    case badId = "bad-id"
    /// SQL and Lua fragments as ids and SKUs.
    case injectionInId = "injection-in-id"
    case badTimestamp = "bad-timestamp"
    /// About 1 MiB in a field whose rule is far shorter, the message within the limit.
    case oversizedField = "oversized-field"

    case unknownEventType = "unknown-event-type"
    /// Over 1 MiB: from one byte over up to the largest the simulator sends.
    case tooLarge = "too-large"
    /// An applied eventId with another payload, after it on its own partition.
    case conflictOnItsPartition = "conflict-same-partition"
    /// The same on another topic, sent only once the first is applied (see `waitsForEventId`).
    case conflictOnAnotherTopic = "conflict-other-topic"

    // Valid, however nasty: applied.
    /// Colons in every id that may hold them: eventId, orderId, lineId, transferId...
    case colonIds = "valid-colon-ids"
    /// The longest ids, SKUs and locations, the largest quantity, 1,000 items on a few SKUs,
    /// counts of 0, a transfer to its own location.
    case boundaryValues = "valid-boundaries"
    /// Numbers no Double or Int64 holds, in fields the worker ignores.
    case hugeNumbersInUnknownFields = "valid-huge-numbers-ignored"
    /// Quantities spelt as 5.0, 5E0, 500e-2: integers by value.
    case integralFloats = "valid-integral-floats"
    /// Ids and types written with \u escapes; text with emoji, bidi overrides, U+2028, U+FEFF.
    case escapedText = "valid-escapes"
    /// SQL and Lua fragments in free text and ignored fields.
    case injectionInText = "valid-injection-in-text"
    /// Nested exactly 64 levels deep.
    case deepestAllowed = "valid-depth-64"
    /// Optional fields null.
    case nullOptionals = "valid-null-optionals"
    /// Exactly 1 MiB.
    case largestAllowed = "valid-1-mib"
    /// An applied event sent again with its keys reordered, whitespace and escapes: a duplicate, not a conflict.
    case equivalentResend = "valid-equivalent-resend"

    public var outcome: HostileOutcome {
        switch self {
        case .truncatedJSON, .invalidUTF8, .overlongUTF8, .loneSurrogate, .controlCharacter, .byteOrderMark, .deepNesting,
             .duplicateKey, .notAnObject, .emptyValue, .nullValue, .headersOnly:
            .deadLetter(code: "INVALID_JSON")
        case .numberOutOfRange, .notAnInteger, .emptyField, .nullField, .badId, .injectionInId, .badTimestamp, .oversizedField:
            .deadLetter(code: "INVALID_FIELD")
        case .unknownEventType: .deadLetter(code: "UNKNOWN_EVENT_TYPE")
        case .tooLarge: .deadLetter(code: "TOO_LARGE")
        case .conflictOnItsPartition, .conflictOnAnotherTopic: .deadLetter(code: "EVENT_ID_CONFLICT")
        case .colonIds, .boundaryValues, .hugeNumbersInUnknownFields, .integralFloats, .escapedText, .injectionInText,
             .deepestAllowed, .nullOptionals, .largestAllowed, .equivalentResend:
            .applied
        }
    }

    public var isBad: Bool { outcome != .applied }

    public static let bad = allCases.filter(\.isBad)
    public static let valid = allCases.filter { !$0.isBad }

    /// The seven kinds of the simulator's poison, before hostile input had classes.
    public static let poison: [HostileClass] = [
        .truncatedJSON, .invalidUTF8, .numberOutOfRange, .injectionInId, .unknownEventType, .badTimestamp, .conflictOnItsPartition,
    ]

    /// How often the class is drawn, relative to the others. Values of a mebibyte
    /// and more are 50 times rarer than the rest: a 1,000,000-event day holds them all in memory before it
    /// sends, and each costs the dev broker's partition a share of its 5 MiB
    /// (compressed: the padding is repetitive).
    var weight: Int {
        switch self {
        case .tooLarge, .oversizedField, .largestAllowed: 1
        default: 50
        }
    }
}
