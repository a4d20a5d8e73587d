/// Why bytes are not one JSON value, and where the parser stopped.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// Offset of the offending byte in the input (its length at an unexpected end).
    public var offset: Int

    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(message) at byte \(offset)" }
}

extension JSONValue {
    /// Objects and arrays nested deeper than this are rejected, so hostile input
    /// cannot exhaust the stack.
    public static let maxDepth = 64

    /// Parses exactly one JSON value (RFC 8259) from UTF-8 bytes: no byte order
    /// mark, no trailing data, no invalid UTF-8, no unpaired surrogate escapes,
    /// no object that repeats a name (compared after unescaping), since readers
    /// disagree on which value wins. Numbers of any size and precision are kept
    /// exact.
    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (input) throws(JSONParseError) -> JSONValue in
            var parser = JSONParser(input: input)
            return try parser.parseDocument()
        }
    }
}

/// A recursive-descent parser over a byte buffer. Members and elements of open
/// containers wait on shared stacks, so each object or array allocates once.
struct JSONParser: ~Copyable {
    private let input: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var depth = 0
    private var pendingMembers: [(name: String, nameOffset: Int, value: JSONValue)] = []
    private var pendingElements: [JSONValue] = []
    /// Reused for strings that contain escapes.
    private var unescaped: [UInt8] = []

    init(input: UnsafeBufferPointer<UInt8>) {
        self.input = input
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if input.count >= 3, input[0] == 0xEF, input[1] == 0xBB, input[2] == 0xBF {
            throw JSONParseError(message: "a byte order mark is not allowed", offset: 0)
        }
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard position == input.count else { throw unexpected("the end of the input") }
        return value
    }

    // MARK: Values

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        switch peek() ?? 0 {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "t"): try parseKeyword("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseKeyword("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseKeyword("null"); return .null
        default: throw unexpected("a value")
        }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        let firstMember = pendingMembers.count
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
        } else {
            while true {
                guard peek() == UInt8(ascii: "\"") else { throw unexpected("a string key") }
                let nameOffset = position
                let name = try parseString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw unexpected("':'") }
                position += 1
                skipWhitespace()
                pendingMembers.append((name, nameOffset, try parseValue()))
                skipWhitespace()
                if try consumeSeparator(closing: UInt8(ascii: "}"), expecting: "',' or '}'") { break }
                skipWhitespace()
            }
        }
        var members = [String: JSONValue](minimumCapacity: pendingMembers.count - firstMember)
        for member in pendingMembers[firstMember...] {
            guard members.updateValue(member.value, forKey: member.name) == nil else {
                throw JSONParseError(message: "duplicate name \(JSONValue.string(member.name).excerpt)", offset: member.nameOffset)
            }
        }
        pendingMembers.removeSubrange(firstMember...)
        depth -= 1
        return .object(members)
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        let firstElement = pendingElements.count
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
        } else {
            while true {
                pendingElements.append(try parseValue())
                skipWhitespace()
                if try consumeSeparator(closing: UInt8(ascii: "]"), expecting: "',' or ']'") { break }
                skipWhitespace()
            }
        }
        let elements = Array(pendingElements[firstElement...])
        pendingElements.removeSubrange(firstElement...)
        depth -= 1
        return .array(elements)
    }

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        guard depth <= JSONValue.maxDepth else {
            throw JSONParseError(message: "nesting deeper than \(JSONValue.maxDepth) levels", offset: position)
        }
        position += 1
    }

    /// After a member or element: true at the closing bracket, false after a comma.
    private mutating func consumeSeparator(closing: UInt8, expecting: String) throws(JSONParseError) -> Bool {
        switch peek() {
        case UInt8(ascii: ","):
            position += 1
            return false
        case closing:
            position += 1
            return true
        default:
            throw unexpected(expecting)
        }
    }

    private mutating func parseKeyword(_ keyword: StaticString) throws(JSONParseError) {
        let start = position
        let text = UnsafeBufferPointer(start: keyword.utf8Start, count: keyword.utf8CodeUnitCount)
        for expected in text {
            guard peek() == expected else {
                throw JSONParseError(message: "invalid literal, expected '\(keyword)'", offset: start)
            }
            position += 1
        }
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = position
        let isNegative = peek() == UInt8(ascii: "-")
        if isNegative { position += 1 }
        if peek() == UInt8(ascii: "0") {
            position += 1
            if isDigit(peek()) {
                throw JSONParseError(message: "leading zeros are not allowed in numbers", offset: start)
            }
        } else {
            try skipDigits()
        }
        var isIntegerToken = true
        if peek() == UInt8(ascii: ".") {
            isIntegerToken = false
            position += 1
            try skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            isIntegerToken = false
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            try skipDigits()
        }
        let token = UnsafeBufferPointer(rebasing: input[start..<position])
        // Most numbers are integer tokens within Int64: those need no taking apart.
        if isIntegerToken, let integer = Self.int64(token, isNegative: isNegative) {
            return .integer(integer)
        }
        return .number(JSONNumber(validToken: token))
    }

    private mutating func skipDigits() throws(JSONParseError) {
        guard isDigit(peek()) else { throw unexpected("a digit") }
        repeat { position += 1 } while isDigit(peek())
    }

    /// The integer of a token of digits (after an optional '-'); nil if it overflows.
    private static func int64(_ token: UnsafeBufferPointer<UInt8>, isNegative: Bool) -> Int64? {
        // Accumulate negatively: Int64.min has no positive counterpart.
        var value: Int64 = 0
        for byte in token.dropFirst(isNegative ? 1 : 0) {
            let (scaled, overflowScaling) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowAdding) = scaled.subtractingReportingOverflow(Int64(byte &- UInt8(ascii: "0")))
            guard !overflowScaling, !overflowAdding else { return nil }
            value = next
        }
        if isNegative { return value }
        return value == .min ? nil : -value
    }

    // MARK: Strings

    private mutating func parseString() throws(JSONParseError) -> String {
        position += 1
        let start = position
        // Fast path: no escapes, so the string is a slice of the input.
        while position < input.count {
            switch input[position] {
            case UInt8(ascii: "\""):
                let text = String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
                position += 1
                return text
            case UInt8(ascii: "\\"):
                return try parseEscapedString(from: start)
            default:
                try skipStringCharacter()
            }
        }
        throw unexpected("'\"' to close the string")
    }

    private mutating func parseEscapedString(from start: Int) throws(JSONParseError) -> String {
        unescaped.removeAll(keepingCapacity: true)
        unescaped.append(contentsOf: input[start..<position])
        while position < input.count {
            switch input[position] {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: unescaped, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape()
            default:
                let characterStart = position
                try skipStringCharacter()
                unescaped.append(contentsOf: input[characterStart..<position])
            }
        }
        throw unexpected("'\"' to close the string")
    }

    private mutating func parseEscape() throws(JSONParseError) {
        let escapeStart = position
        position += 1
        let replacement: UInt8
        switch peek() {
        case UInt8(ascii: "\""): replacement = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): replacement = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): replacement = UInt8(ascii: "/")
        case UInt8(ascii: "b"): replacement = 0x08
        case UInt8(ascii: "f"): replacement = 0x0C
        case UInt8(ascii: "n"): replacement = 0x0A
        case UInt8(ascii: "r"): replacement = 0x0D
        case UInt8(ascii: "t"): replacement = 0x09
        case UInt8(ascii: "u"):
            position += 1
            let scalar = try parseUnicodeEscape(escapeStart: escapeStart)
            unescaped.append(contentsOf: UTF8.encode(scalar)!)
            return
        default:
            throw JSONParseError(message: "invalid escape sequence", offset: escapeStart)
        }
        position += 1
        unescaped.append(replacement)
    }

    /// After `\u`: four hex digits, and for a high surrogate the `\uDC00`-`\uDFFF`
    /// escape that must follow it.
    private mutating func parseUnicodeEscape(escapeStart: Int) throws(JSONParseError) -> Unicode.Scalar {
        let first = try parseHexQuad()
        switch first {
        case 0xD800...0xDBFF:
            guard peek() == UInt8(ascii: "\\"), peek(at: position + 1) == UInt8(ascii: "u") else {
                throw JSONParseError(message: "unpaired surrogate escape", offset: escapeStart)
            }
            position += 2
            let second = try parseHexQuad()
            guard (0xDC00...0xDFFF).contains(second) else {
                throw JSONParseError(message: "unpaired surrogate escape", offset: escapeStart)
            }
            return Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))!
        case 0xDC00...0xDFFF:
            throw JSONParseError(message: "unpaired surrogate escape", offset: escapeStart)
        default:
            return Unicode.Scalar(first)!
        }
    }

    private mutating func parseHexQuad() throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            let digit: UInt8
            switch peek() ?? 0 {
            case let byte where isDigit(byte): digit = byte - UInt8(ascii: "0")
            case let byte where (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte): digit = byte - UInt8(ascii: "a") + 10
            case let byte where (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte): digit = byte - UInt8(ascii: "A") + 10
            default: throw unexpected("a hex digit")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    /// Steps over one unescaped character of a string: no control characters,
    /// and only well-formed UTF-8 (Unicode table 3-7: no overlong forms, no
    /// surrogates, nothing above U+10FFFF).
    private mutating func skipStringCharacter() throws(JSONParseError) {
        let lead = input[position]
        if lead < 0x20 {
            throw JSONParseError(message: "control character in string must be escaped", offset: position)
        }
        if lead < 0x80 {
            position += 1
            return
        }
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xE1...0xEF: length = 3
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        case 0xF1...0xF3: length = 4
        default: throw invalidUTF8()
        }
        guard let second = peek(at: position + 1), secondRange.contains(second) else { throw invalidUTF8() }
        for offset in 2..<length {
            guard let next = peek(at: position + offset), (0x80...0xBF).contains(next) else { throw invalidUTF8() }
        }
        position += length
    }

    // MARK: Bytes

    private func peek() -> UInt8? {
        position < input.count ? input[position] : nil
    }

    private func peek(at offset: Int) -> UInt8? {
        offset < input.count ? input[offset] : nil
    }

    private func isDigit(_ byte: UInt8?) -> Bool {
        guard let byte else { return false }
        return byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func skipWhitespace() {
        while let byte = peek(),
              byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t") {
            position += 1
        }
    }

    private func invalidUTF8() -> JSONParseError {
        JSONParseError(message: "invalid UTF-8", offset: position)
    }

    private func unexpected(_ expected: String) -> JSONParseError {
        guard let byte = peek() else {
            return JSONParseError(message: "unexpected end of input, expected \(expected)", offset: position)
        }
        let found = (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(byte < 0x10 ? "0" : "")\(String(byte, radix: 16, uppercase: true))"
        return JSONParseError(message: "unexpected \(found), expected \(expected)", offset: position)
    }
}
