import Foundation

/// A node's address.
public struct RedisAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// Where and how to reach Redis: `redis://[[user]:password@]host[:port][,host[:port]...][/db]`.
/// More than one address: seed nodes of a Redis Cluster, tried in turn until one
/// answers (one address is enough for a cluster too). The password is kept out
/// of `description`, so the value can be logged.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?
    /// Seed nodes besides `host:port`.
    public var moreSeeds: [RedisAddress] = []

    public init(host: String = "127.0.0.1", port: Int = 6379, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
    }

    /// Every address given, the first one first.
    public var seeds: [RedisAddress] { [RedisAddress(host: host, port: port)] + moreSeeds }

    /// The same credentials and database at another node.
    public func at(_ address: RedisAddress) -> RedisURL {
        var url = self
        url.host = address.host
        url.port = address.port
        url.moreSeeds = []
        return url
    }

    public init(_ string: String) throws(RedisError) {
        // Only a redacted form of the input may appear in errors: it can hold a password.
        let usage = "expected redis://[[user]:password@]host[:port][,host[:port]...][/db], got \(Self.redact(string))"
        // URLComponents takes one host: the seeds after the first are cut out here.
        var first = string
        var moreSeeds: [RedisAddress] = []
        if let scheme = string.range(of: "://") {
            let authorityEnd = string[scheme.upperBound...].firstIndex(of: "/") ?? string.endIndex
            let hostsStart = string[scheme.upperBound..<authorityEnd].range(of: "@", options: .backwards)?.upperBound ?? scheme.upperBound
            let hosts = string[hostsStart..<authorityEnd].split(separator: ",", omittingEmptySubsequences: false)
            if hosts.count > 1 {
                first = String(string[..<hostsStart]) + hosts[0] + string[authorityEnd...]
                for seed in hosts.dropFirst() {
                    guard let components = URLComponents(string: "redis://\(seed)"), let host = components.host, !host.isEmpty,
                          components.path.isEmpty, components.port.map({ (1...65535).contains($0) }) ?? true else {
                        throw .invalidURL("bad seed node '\(seed)' in \(Self.redact(string))")
                    }
                    moreSeeds.append(RedisAddress(host: host, port: components.port ?? 6379))
                }
            }
        }
        guard let components = URLComponents(string: first), components.scheme == "redis" else {
            throw .invalidURL(usage)
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
        self.moreSeeds = moreSeeds
    }

    public var description: String {
        var userInfo = ""
        if let username { userInfo = username }
        if password != nil { userInfo += ":***" }
        if !userInfo.isEmpty { userInfo += "@" }
        return "redis://\(userInfo)\(seeds.map(\.description).joined(separator: ","))/\(database)"
    }

    /// Replaces whatever sits between `://` and `@` by `***`.
    static func redact(_ string: String) -> String {
        guard let scheme = string.range(of: "://"), let at = string.range(of: "@", options: .backwards),
              scheme.upperBound <= at.lowerBound else { return string }
        return string.replacingCharacters(in: scheme.upperBound..<at.lowerBound, with: "***")
    }
}
