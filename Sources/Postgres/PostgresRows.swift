import Foundation

/// A statement's result, copied out of libpq (text format) and freed at once.
public struct PostgresRows: Sendable {
    public let columns: [String]
    public let rows: [PostgresRow]
    /// Rows affected, for INSERT, UPDATE, DELETE and COPY.
    public let affectedRows: Int

    public var count: Int { rows.count }
    public var first: PostgresRow? { rows.first }
}

public struct PostgresRow: Sendable {
    let columnIndex: [String: Int]
    public let values: [String?]

    public subscript(_ column: String) -> PostgresCell {
        PostgresCell(column: column, text: columnIndex[column].flatMap { values[$0] })
    }

    public subscript(_ index: Int) -> PostgresCell {
        PostgresCell(column: "#\(index)", text: values[index])
    }
}

/// One value of a row in PostgreSQL's text format, with typed readers that throw
/// when the text is not what the caller expects.
public struct PostgresCell: Sendable {
    public let column: String
    public let text: String?

    public var isNull: Bool { text == nil }

    public func string() throws(PostgresError) -> String {
        guard let text else { throw .unexpectedResult("\(column) is NULL") }
        return text
    }

    public func int() throws(PostgresError) -> Int64 {
        guard let value = Int64(try string()) else { throw .unexpectedResult("\(column) is not an integer: \(text ?? "")") }
        return value
    }

    public func bool() throws(PostgresError) -> Bool {
        switch try string() {
        case "t": return true
        case "f": return false
        case let other: throw .unexpectedResult("\(column) is not a boolean: \(other)")
        }
    }

    /// A bytea column: PostgreSQL's text format is `\x` followed by hex digits.
    public func bytes() throws(PostgresError) -> [UInt8] {
        var text = try string()
        guard text.hasPrefix("\\x"), text.utf8.count % 2 == 0 else { throw .unexpectedResult("\(column) is not bytea hex") }
        // Straight into the array, two digits a byte: a value may be megabytes (a
        // dead letter's payload), and appending a byte at a time cost 15 ms a mebibyte.
        let count = text.utf8.count / 2 - 1
        var isHex = true
        let bytes = text.withUTF8 { digits in
            [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                for index in 0..<count {
                    let (high, low) = (Self.hexValue(digits[2 + 2 * index]), Self.hexValue(digits[3 + 2 * index]))
                    guard let high, let low else {
                        isHex = false
                        break
                    }
                    buffer[index] = high << 4 | low
                    initialized = index + 1
                }
            }
        }
        guard isHex else { throw .unexpectedResult("\(column) is not bytea hex") }
        return bytes
    }

    private static func hexValue(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): char - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
