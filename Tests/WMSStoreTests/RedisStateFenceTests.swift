import Foundation
import BlockingIO
import Postgres
import Testing
import TestSupport
import WMSStore

/// `redis_state`: a batch's transaction commits only on the Redis state its
/// scripts ran on, and a renewal (a repair) waits for the batches that checked
/// the old state.
@Suite struct RedisStateFenceTests {
    static func batch(_ messageId: String) -> BatchRecords {
        var records = BatchRecords()
        records.outbox = [OutboxRecord(messageId: messageId, topic: "a", key: nil, payload: [0x7B, 0x7D], eventId: nil)]
        return records
    }

    @Test func aBatchOnAStateThatNoLongerStandsWritesNothing() async throws {
        let schema = try await FreshSchema.create(migrated: true)
        let outcome = try await blocking {
            let store = InventoryStore(db: try PostgresConnection(url: schema.url))
            var sentinels: [RedisStateRecord] = []
            let (first, adopted) = try store.adoptRedisState(RedisStateRecord(deployment: "d1", token: "t1")) { sentinels.append($0) }
            let (again, adoptedAgain) = try store.adoptRedisState(RedisStateRecord(deployment: "d2", token: "t2")) { sentinels.append($0) }
            try store.write(Self.batch("on-t1"), redisState: "t1")
            let renewed = try store.renewRedisState(token: "t3", newDeployment: "d3")
            var refused: (any Error)?
            do { try store.write(Self.batch("on-t1-after-renewal"), redisState: "t1") } catch { refused = error }
            try store.write(Self.batch("on-t3"), redisState: "t3")
            return (first, adopted, again, adoptedAgain, sentinels, renewed, refused, try store.allPendingOutbox(limit: 10).map(\.messageId))
        }
        try await schema.drop()
        #expect(outcome.0 == RedisStateRecord(deployment: "d1", token: "t1") && outcome.1)
        #expect(outcome.2 == outcome.0 && !outcome.3, "the first adoption stands")
        #expect(outcome.4 == [outcome.0], "the sentinel is written by the adoption only")
        #expect(outcome.5 == RedisStateRecord(deployment: "d1", token: "t3"), "a renewal keeps the deployment")
        #expect(outcome.6 is RedisStateChanged, "\(String(describing: outcome.6))")
        #expect(outcome.7 == ["on-t1", "on-t3"])
    }

    /// Replication positions: recorded with the batch, the furthest per history
    /// read back; pruned once checked, keeping what was written since the check
    /// and the furthest row of each history a primary continues; emptied by a
    /// renewal (a repair).
    @Test func replicationPositionsAreRecordedPrunedAndEmptiedByARepair() async throws {
        let schema = try await FreshSchema.create(migrated: true)
        let outcome = try await blocking {
            let store = InventoryStore(db: try PostgresConnection(url: schema.url))
            _ = try store.adoptRedisState(RedisStateRecord(deployment: "d", token: "t")) { _ in }
            func write(_ id: String, holder: String, _ offsets: [String: Int64]) throws {
                try store.write(Self.batch(id), redisState: "t", replication: RedisReplicationPositions(holder: holder, offsets: offsets))
            }
            try write("1", holder: "w1", ["old": 100, "kept": 50])
            try write("2", holder: "w2", ["old": 80, "kept": 70])
            try write("3", holder: "w1", ["old": 90])  // never lowers w1's row
            let read = try store.replicationPositions()
            // Written after the read: kept by the prune, for the next check.
            try write("4", holder: "w3", ["old": 120])
            try store.pruneReplicationPositions(read: read, continued: ["kept"])
            let pruned = try store.db.query("SELECT replid, holder, repl_offset FROM redis_replication ORDER BY 1, 2").rows.map {
                "\(try $0["replid"].string())/\(try $0["holder"].string())/\(try $0["repl_offset"].int())"
            }
            _ = try store.renewRedisState(token: "t2", newDeployment: "x")
            return (read, pruned, try store.replicationPositions())
        }
        try await schema.drop()
        #expect(outcome.0 == ["old": 100, "kept": 70])
        #expect(outcome.1 == ["kept/w2/70", "old/w3/120"], "\(outcome.1)")
        #expect(outcome.2.isEmpty)
    }

    /// The renewal waits for a batch transaction that checked the old state, so
    /// the rebuild's snapshot, read after it, holds that batch.
    @Test func aRenewalWaitsForTheBatchesThatCheckedTheOldState() async throws {
        let schema = try await FreshSchema.create(migrated: true)
        let outcome = try await blocking {
            let batchStore = InventoryStore(db: try PostgresConnection(url: schema.url))
            _ = try batchStore.adoptRedisState(RedisStateRecord(deployment: "d", token: "old")) { _ in }
            let renewed = DispatchSemaphore(value: 0)
            var renewedBeforeCommit = false
            var committed = false
            let repairThread = DedicatedThread(name: "repair")
            defer { repairThread.stop() }
            try batchStore.write(Self.batch("in-flight"), redisState: "old") {
                repairThread.perform { [url = schema.url] in
                    _ = try? InventoryStore(db: try PostgresConnection(url: url)).renewRedisState(token: "new", newDeployment: "x")
                    renewed.signal()
                }
                // Still inside the batch's transaction: the renewal must wait.
                renewedBeforeCommit = renewed.wait(timeout: .now() + .milliseconds(500)) == .success
                committed = true
            }
            renewed.wait()
            return (renewedBeforeCommit, committed, try batchStore.redisState()?.token)
        }
        try await schema.drop()
        #expect(!outcome.0, "the renewal went through while a batch on the old state was uncommitted")
        #expect(outcome.1 && outcome.2 == "new")
    }
}
