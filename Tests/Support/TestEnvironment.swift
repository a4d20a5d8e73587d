import BlockingIO
import Foundation
import Redis

/// Settings of the local services, as `scripts/services start` writes them to its env file.
public enum TestEnvironment {
    /// The variable's value. Tests talk to real servers: without one there is no
    /// test, so a missing setting stops the test with the way to get it.
    public static func require(_ name: String) -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            fatalError("\(name) is not set: run the tests with scripts/test, or `source \"$(scripts/services env)\"` after `scripts/services start`")
        }
        return value
    }

    public static var redisURL: String { require("WMS_REDIS_URL") }
    /// The local Redis Cluster's seed nodes (`scripts/services` starts 3 primaries and 3 replicas).
    public static var redisClusterURL: String { require("WMS_REDIS_CLUSTER_URL") }
    public static var postgresURL: String { require("WMS_TEST_POSTGRES_URL") }
    public static var postgresAdminURL: String { require("WMS_POSTGRES_ADMIN_URL") }
    public static var kafkaBrokers: String { require("WMS_KAFKA_BROKERS") }

    /// A name no other test run uses: for topics, groups, keys and tables.
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// Runs blocking code (the wrappers' calls) on a thread of its own, as production
/// code does, so tests running side by side never starve the cooperative pool.
public func blocking<T: Sendable>(_ name: String = "test", _ body: @Sendable @escaping () throws -> T) async throws -> T {
    let thread = DedicatedThread(name: name)
    defer { thread.stop() }
    return try await thread.run(body)
}

/// Checks `condition` every 100 ms until it holds; fails the test (with `what`)
/// if it still does not after `timeout`.
public func waitUntil(_ what: @autoclosure () -> String, timeout: Duration = .seconds(60),
                      _ condition: @Sendable @escaping () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await blocking("wait", condition) { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw WaitTimedOut(description: "timed out after \(timeout) waiting for: \(what())")
}

public struct WaitTimedOut: Error, CustomStringConvertible {
    public let description: String
}

/// A value handed between threads that use it one after the other (a mock
/// cluster made on one thread and told to fail from another).
public struct UncheckedBox<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

extension TestEnvironment {
    /// Whether the tests run against a Redis Cluster (`scripts/test` runs the
    /// pipeline, allocation, crash and reconcile suites a second time with
    /// `WMS_REDIS_URL` set to the cluster's seed nodes).
    public static var redisIsCluster: Bool { redisURL.contains(",") }

    /// A Redis keyspace of the suite's own, for suites that read or empty the
    /// whole of it: database `database` of the single Redis. A cluster has only
    /// database 0: such suites run on it alone (`scripts/test`).
    public static func redisURL(ownDatabase database: Int) throws -> String {
        guard !redisIsCluster, var components = URLComponents(string: redisURL) else { return redisURL }
        components.path = "/\(database)"
        return components.string ?? redisURL
    }
}

extension RedisClient {
    /// Empties the keyspace: every primary's, on a cluster.
    public func flushAll() throws {
        for node in try primaries() { try node.send("FLUSHDB") }
    }

    /// Every key matching `pattern` (SCAN on every primary), sorted.
    public func keys(matching pattern: String) throws -> [String] {
        var keys: [String] = []
        for node in try primaries() {
            var cursor = "0"
            repeat {
                let reply = try node.send("SCAN", cursor, "MATCH", pattern, "COUNT", 1000).array ?? []
                cursor = reply.first?.string ?? "0"
                keys += reply.last?.array?.compactMap(\.string) ?? []
            } while cursor != "0"
        }
        return keys.sorted()
    }
}

/// In the environment of every worker a test starts (a Redis of a test's own
/// runs in a directory named `wms-test-redis-PORT` instead): if the test process
/// dies (a crash), `scripts/test` finds the processes it left by these, and
/// stops them before they write under the runs that follow.
public let testMarker = ["WMS_TEST_RUN_BY": String(getpid())]
