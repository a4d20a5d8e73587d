/// A JSON value (RFC 8259), as parsed from a message or built for one.
///
/// Numbers are exact decimal values (`JSONNumber`), equal when their values
/// are: `1`, `1.0` and `1e0` are one value, `12345678901234567890` and
/// `12345678901234567891` two. Build them with `.integer(_:)` or `.double(_:)`.
///
/// Objects are Swift dictionaries, so keys are compared as Swift strings: the
/// parser rejects an object that repeats a name, canonically equivalent
/// Unicode names included, since one dictionary cannot hold both.
public enum JSONValue: Sendable, Hashable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case number(JSONNumber)
    case bool(Bool)
    case null
}

// MARK: - Numbers from Swift

extension JSONValue {
    public static func integer(_ value: Int64) -> JSONValue {
        .number(JSONNumber(value))
    }

    /// The number Swift's shortest form of `value` denotes; `null` for NaN and
    /// infinities, which JSON cannot hold.
    public static func double(_ value: Double) -> JSONValue {
        JSONNumber(value).map(JSONValue.number) ?? .null
    }
}

// MARK: - Reading values

extension JSONValue {
    /// The value as an integer: a number whose exact value is an integer within
    /// Int64's range (`5`, `5.0`, `5e0`); nil for anything else (`5.5`,
    /// `5.0000000000000001`, `1e400`, `"5"`), as JSON Schema's "integer" says.
    public var integerValue: Int64? {
        numberValue?.integerValue
    }

    /// The number, exact, for a caller that needs more than `integerValue`.
    public var numberValue: JSONNumber? {
        if case .number(let value) = self { value } else { nil }
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
    /// A later duplicate key wins (parsed input that repeats a name is rejected instead).
    public init(dictionaryLiteral members: (String, JSONValue)...) {
        self = .object(Dictionary(members, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue {
    /// `.string`, or `.null` for nil: optional fields of outbound messages.
    public init(_ text: String?) { self = text.map(JSONValue.string) ?? .null }

    /// `.integer`, or `.null` for nil.
    public init(_ integer: Int64?) { self = integer.map(JSONValue.integer) ?? .null }

    /// `.double`, or `.null` for nil (and for NaN and infinities).
    public init(_ number: Double?) { self = number.map(JSONValue.double) ?? .null }
}

extension JSONValue: CustomStringConvertible {
    /// The canonical serialization as text.
    public var description: String {
        String(decoding: serialized(canonical: true), as: UTF8.self)
    }
}
