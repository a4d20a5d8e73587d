import WMSDomain

/// The outbox's `headers` column: `[{"name": ..., "hex": ...}]`, in order. A
/// header value is bytes (not always UTF-8, possibly holding NUL, which jsonb
/// text refuses) or absent, so it is kept hex-encoded, and absent as null.
extension [OutboxRecord.Header] {
    var outboxJSON: String {
        let headers = map { header -> JSONValue in
            .object(["name": .string(header.name), "hex": JSONValue(header.value.map(Hex.encode))])
        }
        return String(decoding: JSONValue.array(headers).serialized(canonical: true), as: UTF8.self)
    }

    init(outboxJSON: String) throws {
        let parsed = try JSONValue.parse([UInt8](outboxJSON.utf8))
        guard let headers = parsed.arrayValue else { throw OutboxHeadersError(text: outboxJSON) }
        self = try headers.map { header in
            guard let name = header["name"]?.stringValue, let hex = header["hex"] else { throw OutboxHeadersError(text: outboxJSON) }
            if hex.isNull { return OutboxRecord.Header(name: name, value: nil) }
            guard let value = hex.stringValue.flatMap(Hex.decode) else { throw OutboxHeadersError(text: outboxJSON) }
            return OutboxRecord.Header(name: name, value: value)
        }
    }
}

/// An outbox row whose headers are not in the column's format.
struct OutboxHeadersError: Error, CustomStringConvertible {
    let text: String
    var description: String { "outbox headers not in the [{\"name\", \"hex\"}] format: \(text.prefix(200))" }
}

extension Hex {
    /// The bytes of lower- or upper-case hexadecimal; nil if it is not.
    static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        func nibble(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }
}
