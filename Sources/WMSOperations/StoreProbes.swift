import Kafka
import Logging
import Postgres
import Redis
import WMSStore

/// Connecting to the three stores and saying what was found: shared by `check`
/// (once, then exit) and `run` (until every one answers). (The readiness probes
/// keep connections of their own instead, asked every few seconds.)
/// Blocking: call on a dedicated thread.
public struct StoreProbes: Sendable {
    public let settings: Settings

    public init(settings: Settings) {
        self.settings = settings
    }

    /// Redis answers, and which server it is.
    public func probeRedis() throws -> (RedisClient, String) {
        let redis = try RedisClient(url: settings.redis)
        let info = try redis.send("INFO", "server").string ?? ""
        let version = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }?.dropFirst(14) ?? "?"
        return (redis, "\(settings.redis) (Redis \(version))")
    }

    /// PostgreSQL answers and its schema is the one this binary expects.
    public func probePostgres() throws -> (PostgresConnection, String) {
        let db = try connectPostgres()
        let migrator = try Migrator()
        let applied = try migrator.appliedVersionsIfAny(db)
        guard applied.max() == migrator.latestVersion else {
            throw SchemaNotReady(found: applied.max() ?? 0, expected: migrator.latestVersion)
        }
        let version = try db.query("SHOW server_version").first?[0].string() ?? "?"
        return (db, "\(db.redactedURL) (PostgreSQL \(version), schema version \(migrator.latestVersion))")
    }

    /// Another connection of the kind `probePostgres` returns, for the worker's statements.
    public func connectPostgres() throws -> PostgresConnection {
        try InventoryStore.connect(url: settings.postgresURL)
    }

    /// The brokers answer and every topic exists.
    public func probeKafka(_ producer: KafkaProducer) throws -> String {
        let partitions = try settings.topics.map { topic in
            "\(topic):\(try producer.partitionCount(of: topic, timeout: .seconds(10)))"
        }
        return "\(settings.kafkaBrokers) (partitions \(partitions.joined(separator: " ")))"
    }

    public struct SchemaNotReady: Error, CustomStringConvertible {
        let found: Int
        let expected: Int
        public var description: String {
            "the PostgreSQL schema is at version \(found), this binary needs \(expected): run `wms-worker migrate`"
        }
    }
}

extension Migrator {
    /// Applied versions, or none when `migrate` never ran on this database.
    public func appliedVersionsIfAny(_ db: PostgresConnection) throws -> Set<Int> {
        let exists = try db.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").first!["present"].bool()
        return exists ? try appliedVersions(db) : []
    }
}
