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

/// How far a batch's Redis writes reached in each primary's replication
/// history (`INFO replication`: id → offset), recorded with the batch by the
/// worker process `holder`. Histories without replication (offset 0) are left out.
public struct RedisReplicationPositions: Sendable, Hashable {
    public var holder: String
    public var offsets: [String: Int64]

    public init(holder: String, offsets: [String: Int64]) {
        self.holder = holder
        self.offsets = offsets
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
    /// The replication positions go with the old state: what the rebuild writes
    /// is PostgreSQL's, whatever Redis lost before it.
    public func renewRedisState(token: String, newDeployment: String) throws -> RedisStateRecord {
        try db.withTransaction { db in
            let row = try db.query("""
                INSERT INTO redis_state (deployment, token) VALUES (\(newDeployment), \(token))
                ON CONFLICT (singleton) DO UPDATE SET token = EXCLUDED.token, written_at = now()
                RETURNING deployment, token
                """).rows.first
            guard let row else { throw PostgresError.unexpectedResult("redis_state returned no row") }
            _ = try db.query("DELETE FROM redis_replication")
            return RedisStateRecord(deployment: try row["deployment"].string(), token: try row["token"].string())
        }
    }

    // MARK: Replication positions (0010_redis_replication.sql)

    /// Inside a batch's transaction: how far its Redis writes reached on each primary.
    func recordReplication(_ positions: RedisReplicationPositions, _ db: PostgresConnection) throws {
        guard !positions.offsets.isEmpty else { return }
        let replids = Array(positions.offsets.keys)
        _ = try db.query("""
            INSERT INTO redis_replication (replid, holder, repl_offset)
            SELECT replid, \(positions.holder), repl_offset FROM unnest(\(replids)::text[], \(replids.map { positions.offsets[$0]! })::bigint[]) AS p(replid, repl_offset)
            ON CONFLICT (replid, holder) DO UPDATE
            SET repl_offset = greatest(redis_replication.repl_offset, EXCLUDED.repl_offset), recorded_at = now()
            """)
    }

    /// The furthest offset committed batches reached in each replication history.
    public func replicationPositions() throws -> [String: Int64] {
        var offsets: [String: Int64] = [:]
        for row in try db.query("SELECT replid, max(repl_offset) AS reached FROM redis_replication GROUP BY replid").rows {
            offsets[try row["replid"].string()] = try row["reached"].int()
        }
        return offsets
    }

    /// Once the primaries were found to hold every position read: the rows of
    /// histories no primary continues (`taken over`, up to the offsets read), and
    /// of the others every row but the furthest (workers that stopped). Rows
    /// written since the read are kept, for whoever checks next.
    public func pruneReplicationPositions(read: [String: Int64], continued: Set<String>) throws {
        let replids = Array(read.keys)
        _ = try db.query("""
            DELETE FROM redis_replication r
            USING unnest(\(replids)::text[], \(replids.map { read[$0]! })::bigint[], \(replids.map { continued.contains($0) })::boolean[])
                AS checked(replid, reached, continued)
            WHERE r.replid = checked.replid
              AND (r.repl_offset < checked.reached OR (NOT checked.continued AND r.repl_offset = checked.reached))
            """)
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
