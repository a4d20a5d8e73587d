import Foundation

/// A SQL statement whose values can only travel as bound parameters.
///
/// Written as a string literal, every interpolated value becomes `$n` and a bind:
///
///     let query: PostgresQuery = "SELECT on_hand FROM inventory_levels WHERE sku = \(sku)"
///
/// Only the literal parts of the source code become SQL text. SQL assembled at run
/// time must say so by name: `PostgresQuery(unsafeSQL:)`.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation {
    public private(set) var sql: String
    public private(set) var binds: [PostgresBind]

    public init(unsafeSQL sql: String, binds: [PostgresBind] = []) {
        self.sql = sql
        self.binds = binds
    }

    public init(stringLiteral value: StaticString) {
        self.init(unsafeSQL: value.description)
    }

    public init(stringInterpolation: StringInterpolation) {
        self.init(unsafeSQL: stringInterpolation.sql, binds: stringInterpolation.binds)
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PostgresBind] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: StaticString) {
            sql += literal.description
        }

        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value.postgresBind)
            sql += "$\(binds.count)"
        }

        public mutating func appendInterpolation(_ value: (some PostgresEncodable)?) {
            binds.append(value?.postgresBind ?? .null)
            sql += "$\(binds.count)"
        }

        /// An identifier (table or column name) quoted as PostgreSQL requires.
        /// For names chosen by the program, never for values from a message.
        public mutating func appendInterpolation(identifier: String) {
            sql += PostgresQuery.quoteIdentifier(identifier)
        }
    }

    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// One bound parameter, in libpq's text or binary format.
public enum PostgresBind: Sendable, Hashable {
    case null
    /// Text format: PostgreSQL parses it per the parameter's type. Never contains NUL.
    case text(String)
    /// Binary format, for bytea.
    case binary([UInt8])
}

/// A Swift value that can be bound to a statement parameter.
public protocol PostgresEncodable: Sendable {
    var postgresBind: PostgresBind { get }
}

extension String: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(self) }
}

extension Substring: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
}

extension Int: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
}

extension Int64: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
}

extension Int32: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
}

extension Bool: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(self ? "t" : "f") }
}

extension Double: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
}

extension Date: PostgresEncodable {
    /// Microsecond precision, UTC, as timestamptz reads it.
    public var postgresBind: PostgresBind {
        .text(Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(self))
    }
}

/// bytea, sent in binary: any byte, NUL included.
public struct PostgresBytes: PostgresEncodable, Hashable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var postgresBind: PostgresBind { .binary(bytes) }
}

/// Arrays travel as one array literal, which is what `unnest($1::text[])` needs to
/// insert many rows in one statement and one round trip. The literal is built
/// as bytes in one buffer: a batch binds arrays of thousands of elements.
extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public var postgresBind: PostgresBind {
        var literal: [UInt8] = []
        literal.reserveCapacity(count * 12 + 2)
        literal.append(UInt8(ascii: "{"))
        for index in indices {
            if index != startIndex { literal.append(UInt8(ascii: ",")) }
            self[index].appendArrayLiteral(to: &literal)
        }
        literal.append(UInt8(ascii: "}"))
        return .text(String(decoding: literal, as: UTF8.self))
    }
}

public protocol PostgresArrayElement: Sendable {
    /// Appends the element as an array literal element (UTF-8).
    func appendArrayLiteral(to literal: inout [UInt8])
}

extension String: PostgresArrayElement {
    /// Always quoted (so `NULL` and `{` are text), `"` and `\` escaped. The runs
    /// between escapes are copied whole: an element may be megabytes (a dead
    /// letter's payload in hex), and a byte at a time cost 20 ms a mebibyte.
    public func appendArrayLiteral(to literal: inout [UInt8]) {
        literal.append(UInt8(ascii: "\""))
        var text = self
        text.withUTF8 { bytes in
            var runStart = 0
            for index in bytes.indices where bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "\\") {
                literal.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                literal.append(UInt8(ascii: "\\"))
                runStart = index
            }
            literal.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
        literal.append(UInt8(ascii: "\""))
    }
}

extension BinaryInteger where Self: PostgresArrayElement {
    public func appendArrayLiteral(to literal: inout [UInt8]) {
        literal.append(contentsOf: String(self).utf8)
    }
}

extension Int: PostgresArrayElement {}
extension Int64: PostgresArrayElement {}
extension Int32: PostgresArrayElement {}

extension Bool: PostgresArrayElement {
    public func appendArrayLiteral(to literal: inout [UInt8]) { literal.append(UInt8(ascii: self ? "t" : "f")) }
}

extension Double: PostgresArrayElement {
    public func appendArrayLiteral(to literal: inout [UInt8]) { literal.append(contentsOf: String(self).utf8) }
}

extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {
    public func appendArrayLiteral(to literal: inout [UInt8]) {
        if let self { self.appendArrayLiteral(to: &literal) } else { literal.append(contentsOf: "NULL".utf8) }
    }
}
