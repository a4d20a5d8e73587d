/// A JSON value (RFC 8259), as parsed from a message or built for one.
///
/// Numbers keep their kind: a token without fraction or exponent that fits in
/// 64 bits is `.integer`, any other number `.double`. Equality and hashing
/// follow the canonical form (see `serialized(canonical:)`): `.integer(1)`
/// equals `.double(1.0)`, because both are written `1`.
///
/// Objects are Swift dictionaries: on duplicate keys the last one wins, and
/// keys are compared as Swift strings (canonically equivalent Unicode keys
/// count as duplicates).
public enum JSONValue: Sendable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case integer(Int64)
    case double(Double)
    case bool(Bool)
    case null
}

// MARK: - Reading values

extension JSONValue {
    /// Doubles whose magnitude is at most 2^53 hold every integer exactly, so
    /// an integral one among them is an integer (as JSON Schema's "integer" says).
    static let exactIntegerLimit: Double = 9_007_199_254_740_992

    /// The value as an integer: `.integer`, or a `.double` with an integral value
    /// within ±2^53 (`5.0` is 5); nil for anything else.
    public var integerValue: Int64? {
        switch self {
        case .integer(let value): value
        case .double(let value): Self.exactInteger(value)
        default: nil
        }
    }

    static func exactInteger(_ value: Double) -> Int64? {
        guard value.rounded(.towardZero) == value, abs(value) <= exactIntegerLimit else { return nil }
        return Int64(value)
    }

    public var stringValue: String? {
        if case .string(let value) = self { value } else { nil }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { value } else { nil }
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { value } else { nil }
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { value } else { nil }
    }

    public var isNull: Bool {
        if case .null = self { true } else { false }
    }

    /// The member `key` of an object; nil when absent or when this is not an object.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// The element at `index` of an array; nil when out of range or not an array.
    public subscript(index: Int) -> JSONValue? {
        guard let elements = arrayValue, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}

// MARK: - Equality that matches the canonical form

extension JSONValue: Hashable {
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case let (.object(a), .object(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.string(a), .string(b)): a == b
        case let (.bool(a), .bool(b)): a == b
        case (.null, .null): true
        case let (.integer(a), .integer(b)): a == b
        case let (.double(a), .double(b)): a == b
        case let (.integer(a), .double(b)), let (.double(b), .integer(a)): exactInteger(b) == a
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .object(let members):
            hasher.combine(0)
            hasher.combine(members)
        case .array(let elements):
            hasher.combine(1)
            hasher.combine(elements)
        case .string(let text):
            hasher.combine(2)
            hasher.combine(text)
        case .bool(let flag):
            hasher.combine(3)
            hasher.combine(flag)
        case .null:
            hasher.combine(4)
        case .integer, .double:
            // Numbers that are equal across kinds must hash alike.
            if let integer = integerValue {
                hasher.combine(5)
                hasher.combine(integer)
            } else if case .double(let value) = self {
                hasher.combine(6)
                hasher.combine(value)
            }
        }
    }
}

// MARK: - Literals, so outbound messages read like JSON

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Later duplicates win, as when parsing.
    public init(dictionaryLiteral members: (String, JSONValue)...) {
        self = .object(Dictionary(members, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue {
    /// `.string`, or `.null` for nil: optional fields of outbound messages.
    public init(_ text: String?) { self = text.map(JSONValue.string) ?? .null }

    /// `.integer`, or `.null` for nil.
    public init(_ integer: Int64?) { self = integer.map(JSONValue.integer) ?? .null }

    /// `.double`, or `.null` for nil.
    public init(_ number: Double?) { self = number.map(JSONValue.double) ?? .null }
}

extension JSONValue: CustomStringConvertible {
    /// The canonical serialization as text.
    public var description: String {
        String(decoding: serialized(canonical: true), as: UTF8.self)
    }
}
