/// A field that breaks a rule: where it is and what is wrong, before it becomes
/// a `BadEvent` (which adds the eventId).
struct FieldViolation: Error {
    var code: BadEventCode = .invalidField
    var path: String
    var problem: String

    var detail: String { "\(path): \(problem)" }
}

/// Where an object sits in the message, to name its fields in errors. Paths
/// are only built when a rule fails, so valid messages pay nothing for them.
enum FieldLocation {
    case root
    case element(list: String, index: Int)

    func path(of key: String) -> String {
        switch self {
        case .root: key
        case .element(let list, let index): "\(list)[\(index)].\(key)"
        }
    }
}

/// Reads the fields of one JSON object of a message and applies the rules of
/// section 2. A JSON null counts as absent: optional fields may be null,
/// required ones may not.
struct FieldReader {
    let fields: [String: JSONValue]
    let location: FieldLocation

    func violation(_ key: String, _ problem: String, code: BadEventCode = .invalidField) -> FieldViolation {
        FieldViolation(code: code, path: location.path(of: key), problem: problem)
    }

    func violation(_ key: String, mustBe rule: String, got value: JSONValue) -> FieldViolation {
        violation(key, "must be \(rule), got \(value.excerpt)")
    }

    /// The field's value; nil when absent or null.
    func optional(_ key: String) -> JSONValue? {
        guard let value = fields[key], !value.isNull else { return nil }
        return value
    }

    func required(_ key: String) throws(FieldViolation) -> JSONValue {
        guard let value = fields[key] else { throw violation(key, "is required") }
        return value
    }

    func token(_ key: String, _ rule: TokenRule) throws(FieldViolation) -> String {
        try checkedToken(key, try required(key), rule)
    }

    func optionalToken(_ key: String, _ rule: TokenRule) throws(FieldViolation) -> String? {
        guard let value = optional(key) else { return nil }
        return try checkedToken(key, value, rule)
    }

    private func checkedToken(_ key: String, _ value: JSONValue, _ rule: TokenRule) throws(FieldViolation) -> String {
        guard let text = value.stringValue, rule.accepts(text) else { throw violation(key, mustBe: rule.summary, got: value) }
        return text
    }

    func integer(_ key: String, in range: ClosedRange<Int64>) throws(FieldViolation) -> Int64 {
        let value = try required(key)
        guard let integer = value.integerValue, range.contains(integer) else {
            throw violation(key, mustBe: "an integer from \(range.lowerBound) to \(range.upperBound)", got: value)
        }
        return integer
    }

    /// Free text (a reason): 1 to `maxLength` Unicode scalars, none of them
    /// U+0000, which PostgreSQL text cannot store.
    func freeText(_ key: String, maxLength: Int) throws(FieldViolation) -> String {
        let value = try required(key)
        guard let text = value.stringValue, Self.isFreeText(text, maxLength: maxLength) else {
            throw violation(key, mustBe: "a string of 1 to \(maxLength) characters without U+0000", got: value)
        }
        return text
    }

    private static func isFreeText(_ text: String, maxLength: Int) -> Bool {
        var length = 0
        for scalar in text.unicodeScalars {
            length += 1
            guard length <= maxLength, scalar != "\0" else { return false }
        }
        return length > 0
    }

    /// A required list of 1 to 1,000 objects, each read by `readElement`.
    func objectList<Element>(
        _ key: String, _ readElement: (FieldReader) throws(FieldViolation) -> Element
    ) throws(FieldViolation) -> [Element] {
        try checkedObjectList(key, try required(key), readElement)
    }

    /// As `objectList`, nil when absent or null.
    func optionalObjectList<Element>(
        _ key: String, _ readElement: (FieldReader) throws(FieldViolation) -> Element
    ) throws(FieldViolation) -> [Element]? {
        guard let value = optional(key) else { return nil }
        return try checkedObjectList(key, value, readElement)
    }

    private func checkedObjectList<Element>(
        _ key: String, _ value: JSONValue, _ readElement: (FieldReader) throws(FieldViolation) -> Element
    ) throws(FieldViolation) -> [Element] {
        let range = FieldRules.listLength
        guard let elements = value.arrayValue, range.contains(elements.count) else {
            throw violation(key, mustBe: "an array of \(range.lowerBound) to \(range.upperBound) objects", got: value)
        }
        let listPath = location.path(of: key)
        var decoded: [Element] = []
        decoded.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            guard let fields = element.objectValue else {
                throw FieldViolation(path: "\(listPath)[\(index)]", problem: "must be an object, got \(element.excerpt)")
            }
            decoded.append(try readElement(FieldReader(fields: fields, location: .element(list: listPath, index: index))))
        }
        return decoded
    }
}

extension JSONValue {
    /// Longest part of a string from a message quoted in an error detail: details
    /// go into Kafka headers and logs, so they stay short and single-line.
    static let excerptLength = 64

    /// A short, single-line rendering of a value from a message for error
    /// details: strings quoted, JSON-escaped and cut to 64 characters with "…",
    /// numbers (which may have a million digits) cut alike, containers only named.
    var excerpt: String {
        switch self {
        case .object: return "an object"
        case .array(let elements): return "an array of \(elements.count) entries"
        case .string(let text):
            let scalars = text.unicodeScalars
            let isCut = !scalars.dropFirst(Self.excerptLength).isEmpty
            var quoted = ""
            for scalar in JSONValue.string(String(scalars.prefix(Self.excerptLength))).description.unicodeScalars {
                if Self.isInvisibleInLogs(scalar) {
                    let hex = String(scalar.value, radix: 16)
                    quoted += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
            return isCut ? quoted.dropLast() + "…\"" : quoted
        case .number(let number):
            let text = number.description
            return text.count > Self.excerptLength ? text.prefix(Self.excerptLength) + "…" : text
        case .bool, .null: return description
        }
    }

    /// Characters JSON leaves unescaped that would break a log line or hide what
    /// follows: C1 controls, line and paragraph separators, bidirectional overrides.
    private static func isInvisibleInLogs(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
