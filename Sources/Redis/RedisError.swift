/// An error reply from the Redis server, split at the first space:
/// `NOSCRIPT No matching script` has prefix `NOSCRIPT`.
public struct RedisServerError: Error, Sendable, Hashable, CustomStringConvertible {
    public var prefix: String
    public var message: String

    public init(prefix: String, message: String) {
        self.prefix = prefix
        self.message = message
    }

    init(reply: String) {
        if let space = reply.firstIndex(of: " ") {
            self.init(prefix: String(reply[..<space]), message: String(reply[reply.index(after: space)...]))
        } else {
            self.init(prefix: reply, message: "")
        }
    }

    public var description: String { message.isEmpty ? prefix : "\(prefix) \(message)" }

    /// The server will likely accept the command later: it is loading, busy, or failing over.
    public var isRetriable: Bool {
        ["LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY"].contains(prefix)
    }
}

public enum RedisError: Error, Sendable, CustomStringConvertible {
    /// The URL could not be used; the message never contains the password.
    case invalidURL(String)
    /// Connecting, sending or receiving failed (refused, reset, timed out). The
    /// connection is dropped and the next command reconnects.
    case connection(String)
    /// The server answered with an error.
    case server(RedisServerError)
    /// The reply had a shape the caller did not expect.
    case unexpectedReply(String)

    public var isRetriable: Bool {
        switch self {
        case .connection: true
        case .server(let error): error.isRetriable
        case .invalidURL, .unexpectedReply: false
        }
    }

    public var description: String {
        switch self {
        case .invalidURL(let detail): "invalid Redis URL: \(detail)"
        case .connection(let detail): "Redis connection error: \(detail)"
        case .server(let error): "Redis error: \(error)"
        case .unexpectedReply(let detail): "unexpected Redis reply: \(detail)"
        }
    }
}
