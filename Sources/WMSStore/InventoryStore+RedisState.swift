import Postgres

/// The Redis state the workers build on (`redis_state`, one row): Redis holds
/// the same token in its sentinel key while it holds that state. See
/// `0009_redis_state.sql`.
public struct RedisStateRecord: Codable, Sendable, Hashable {
    /// This database's id: it names the sentinel key.
    public var deployment: String
    public var token: String

    public init(deployment: String, token: String) {
        self.deployment = deployment
        self.token = token
    }
}

extension InventoryStore {
    /// The state that stands, or nil before any worker has started on this database.
    public func redisState() throws -> RedisStateRecord? {
        try db.query("SELECT deployment, token FROM redis_state").rows.first.map {
            RedisStateRecord(deployment: try $0["deployment"].string(), token: try $0["token"].string())
        }
    }

    /// The state that stands, and whether it is `candidate`, written now: with no
    /// row yet (the first worker on this database), the first worker adopts the
    /// Redis it finds, as workers before 0009 did, and `writeSentinel` puts the
    /// token in Redis before anyone else can read the row (under the repairs'
    /// lock).
    public func adoptRedisState(_ candidate: RedisStateRecord,
                                writeSentinel: (RedisStateRecord) throws -> Void) throws -> (state: RedisStateRecord, adopted: Bool) {
        try db.withTransaction { db in
            _ = try db.query("SELECT pg_advisory_xact_lock(\(Self.redisStateLock)::int, hashtext(current_schema()))")
            if let standing = try redisState() { return (standing, false) }
            _ = try db.query("INSERT INTO redis_state (deployment, token) VALUES (\(candidate.deployment), \(candidate.token))")
            try writeSentinel(candidate)
            return (candidate, true)
        }
    }

    /// The advisory lock a repair of Redis holds (and an adoption, for a moment):
    /// one repair at a time, released if its session dies. One per schema, the
    /// second key being the schema's hash: deployments in one database (each in
    /// a schema of its own, as the tests run) do not wait for each other.
    static let redisStateLock: Int32 = 0x776D_735F // "wms_"

    /// Takes the repairs' lock for this session, if no other session holds it.
    public func tryLockRedisRepair() throws -> Bool {
        try db.query("SELECT pg_try_advisory_lock(\(Self.redisStateLock)::int, hashtext(current_schema())) AS locked").rows.first?["locked"].bool() == true
    }

    public func unlockRedisRepair() throws {
        _ = try db.query("SELECT pg_advisory_unlock(\(Self.redisStateLock)::int, hashtext(current_schema()))")
    }

    /// A new token, before a repair rebuilds Redis: it waits for every batch
    /// transaction that checked the old one (they hold the row FOR SHARE) to end,
    /// and any batch that checks after it sees the new token and rolls back.
    /// The deployment stays (a new one if there was no row).
    public func renewRedisState(token: String, newDeployment: String) throws -> RedisStateRecord {
        let row = try db.query("""
            INSERT INTO redis_state (deployment, token) VALUES (\(newDeployment), \(token))
            ON CONFLICT (singleton) DO UPDATE SET token = EXCLUDED.token, written_at = now()
            RETURNING deployment, token
            """).rows.first
        guard let row else { throw PostgresError.unexpectedResult("redis_state returned no row") }
        return RedisStateRecord(deployment: try row["deployment"].string(), token: try row["token"].string())
    }

    /// Inside a batch's transaction: that its scripts ran on the Redis state that
    /// still stands, and that it keeps standing until the commit.
    func checkRedisState(_ expected: String, _ db: PostgresConnection) throws {
        let standing = try db.query("SELECT token FROM redis_state FOR SHARE").rows.first.map { try $0["token"].string() }
        guard standing == expected else { throw RedisStateChanged(expected: expected, standing: standing) }
    }
}

/// A batch's Redis scripts ran on a Redis state that no longer stands (Redis was
/// repaired meanwhile): it is rolled back, to run again on the repaired Redis.
public struct RedisStateChanged: Error, Sendable, CustomStringConvertible {
    public let expected: String
    public let standing: String?

    public var description: String {
        "the batch ran on Redis state \(expected), but \(standing ?? "none") stands now (Redis was repaired meanwhile): running it again"
    }
}
