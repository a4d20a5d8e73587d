import Foundation

/// Where and how to reach Redis: `redis://[[user]:password@]host[:port][/db]`.
/// The password is kept out of `description`, so the value can be logged.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?

    public init(host: String = "127.0.0.1", port: Int = 6379, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
    }

    public init(_ string: String) throws(RedisError) {
        // Only a redacted form of the input may appear in errors: it can hold a password.
        guard let components = URLComponents(string: string), components.scheme == "redis" else {
            throw .invalidURL("expected redis://[[user]:password@]host[:port][/db], got \(Self.redact(string))")
        }
        guard let host = components.host, !host.isEmpty else {
            throw .invalidURL("no host in \(Self.redact(string))")
        }
        let path = components.path.drop(while: { $0 == "/" })
        guard let database = path.isEmpty ? 0 : Int(path), database >= 0 else {
            throw .invalidURL("database must be a number, got '\(path)' in \(Self.redact(string))")
        }
        if let port = components.port, !(1...65535).contains(port) {
            throw .invalidURL("port out of range in \(Self.redact(string))")
        }
        self.init(
            host: host, port: components.port ?? 6379, database: database,
            username: components.user.flatMap { $0.isEmpty ? nil : $0 },
            password: components.password)
    }

    public var description: String {
        var userInfo = ""
        if let username { userInfo = username }
        if password != nil { userInfo += ":***" }
        if !userInfo.isEmpty { userInfo += "@" }
        return "redis://\(userInfo)\(host):\(port)/\(database)"
    }

    /// Replaces whatever sits between `://` and `@` by `***`.
    static func redact(_ string: String) -> String {
        guard let scheme = string.range(of: "://"), let at = string.range(of: "@", options: .backwards),
              scheme.upperBound <= at.lowerBound else { return string }
        return string.replacingCharacters(in: scheme.upperBound..<at.lowerBound, with: "***")
    }
}
