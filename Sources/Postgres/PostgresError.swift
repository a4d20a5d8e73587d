/// SQLSTATE codes the worker acts on, named as in PostgreSQL's errcodes table.
public struct SQLState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let uniqueViolation = SQLState(rawValue: "23505")
    public static let foreignKeyViolation = SQLState(rawValue: "23503")
    public static let checkViolation = SQLState(rawValue: "23514")
    public static let serializationFailure = SQLState(rawValue: "40001")
    public static let deadlockDetected = SQLState(rawValue: "40P01")
    public static let syntaxError = SQLState(rawValue: "42601")
    public static let undefinedTable = SQLState(rawValue: "42P01")
    public static let undefinedColumn = SQLState(rawValue: "42703")
    public static let invalidPassword = SQLState(rawValue: "28P01")
    public static let adminShutdown = SQLState(rawValue: "57P01")
    public static let crashShutdown = SQLState(rawValue: "57P02")
    public static let cannotConnectNow = SQLState(rawValue: "57P03")
    public static let queryCanceled = SQLState(rawValue: "57014")

    /// The two-character class: `08` connection exception, `53` insufficient resources, ...
    public var errorClass: Substring { rawValue.prefix(2) }

    /// Running the same transaction again can succeed.
    public var isRetriable: Bool {
        ["08", "53", "57"].contains(errorClass) || self == .serializationFailure || self == .deadlockDetected
    }

    public var description: String { rawValue }
}

public enum PostgresError: Error, Sendable, CustomStringConvertible {
    /// The URL could not be used; the message never contains the password.
    case invalidURL(String)
    /// Connecting failed. `isRetriable` is false when the server refused the
    /// credentials or the database, where waiting will not help.
    case connection(String, retriable: Bool)
    /// The server reported an error for a statement.
    case server(sqlState: SQLState, message: String, detail: String?)
    /// The connection broke during a statement; whether the statement took effect
    /// is unknown (a COMMIT in flight may or may not have committed).
    case connectionLost(String)
    /// A result had a shape the caller did not expect.
    case unexpectedResult(String)

    public var sqlState: SQLState? {
        if case .server(let state, _, _) = self { state } else { nil }
    }

    public var isRetriable: Bool {
        switch self {
        case .connection(_, let retriable): retriable
        case .connectionLost: true
        case .server(let state, _, _): state.isRetriable
        case .invalidURL, .unexpectedResult: false
        }
    }

    public var description: String {
        switch self {
        case .invalidURL(let detail): "invalid PostgreSQL URL: \(detail)"
        case .connection(let detail, _): "PostgreSQL connection failed: \(detail)"
        case .server(let state, let message, let detail):
            "PostgreSQL error \(state): \(message)" + (detail.map { " (\($0))" } ?? "")
        case .connectionLost(let detail): "PostgreSQL connection lost: \(detail)"
        case .unexpectedResult(let detail): "unexpected PostgreSQL result: \(detail)"
        }
    }
}
