import Foundation
import Postgres
import Redis
import WMSPipeline
import WMSStore

/// A PostgreSQL schema of the test's own, first on the search_path of connections
/// made with `url`: tests that write the worker's tables do not see each other.
public struct FreshSchema: Sendable {
    public let name: String
    public let url: String

    /// An empty schema; `migrated: true` applies the shipped migrations to it.
    public static func create(migrated: Bool = false) async throws -> FreshSchema {
        let name = "test_" + UUID().uuidString.prefix(8).lowercased()
        let separator = TestEnvironment.postgresURL.contains("?") ? "&" : "?"
        let schema = FreshSchema(name: name, url: TestEnvironment.postgresURL + separator + "options=-csearch_path%3D\(name)")
        try await blocking {
            try PostgresConnection(url: TestEnvironment.postgresURL).execute(script: "CREATE SCHEMA \(name)")
            if migrated { try Migrator().migrate(try PostgresConnection(url: schema.url)) }
        }
        return schema
    }

    /// Drops the schema, and the Redis state sentinels of its deployment (on a
    /// cluster, one per slot: left behind, every test would leave 16,384 keys).
    public func drop() async throws {
        try await blocking {
            let db = try PostgresConnection(url: url)
            if let state = try? InventoryStore(db: db).redisState() {
                try RedisStateSentinel(state).remove(from: try RedisClient(url: try RedisURL(TestEnvironment.redisURL)))
            }
            try PostgresConnection(url: TestEnvironment.postgresURL).execute(script: "DROP SCHEMA \(name) CASCADE")
        }
    }
}

extension InventoryStore {
    /// Writes a batch as the pipeline would, on the Redis state that stands
    /// (adopted, with no Redis, if none does): for tests of PostgreSQL alone.
    public func writeOnStandingState(_ batch: BatchRecords) throws {
        let (state, _) = try adoptRedisState(RedisStateRecord(deployment: "tests", token: "tests")) { _ in }
        try write(batch, redisState: state.token)
    }
}
