import Foundation
import Logging
import Metrics
import Redis
import WMSStore

/// Rebuilds Redis from PostgreSQL under a new state token, unless (once it
/// holds the repairs' lock) Redis holds PostgreSQL's state after all (another
/// worker repaired it): calls `ifLost` before rebuilding; returns the state and
/// whether it rebuilt (`Reconciler.repair`, which the daemon passes in). Throws
/// `RedisRepairUnderWay` when another process is repairing.
public typealias RedisRepair = @Sendable (_ ifLost: () -> Void) throws -> (state: RedisStateRecord, rebuilt: Bool)

/// Another process (a worker, `reconcile --repair`) holds the repairs' lock.
public struct RedisRepairUnderWay: Error, Sendable, CustomStringConvertible {
    public init() {}
    public var description: String { "Redis is being repaired from PostgreSQL by another process: waiting for it" }
}

/// Whether Redis holds the state the workers build on (contract, section 4: a
/// Redis that lost its data is detected before the next batch is applied,
/// reported, and repaired from PostgreSQL). PostgreSQL's `redis_state` names the
/// state; Redis holds its token in a sentinel key that nothing but a repair
/// writes, so a restart without persistence, a FLUSHALL or a failover to an empty
/// replica leaves Redis without it. Every batch checks it first (`HotStore.claim`,
/// then atomically in each script), and its PostgreSQL transaction checks that
/// the state still stands.
///
/// A failover can lose less than everything: Redis replication is asynchronous,
/// and a replica promoted after its primary died may lack the last writes of
/// batches PostgreSQL committed, sentinel and all in place. So every batch
/// records how far its writes reached in each primary's replication history
/// (`0010_redis_replication.sql`), and whenever the primaries' histories change
/// (at the start, a failover, a primary demoted), before the next batch is
/// applied, they are asked whether they hold every position recorded: one that
/// no primary holds is a loss, reported and repaired like the others.
///
/// Blocking: on the pipeline thread, with the pipeline's own connections.
public final class RedisStateGuard {
    let store: InventoryStore
    let hot: RedisClient
    let repair: RedisRepair?
    let logger: Logger
    private let losses = Counter(label: WorkerMetric.redisDataLosses.name)
    /// The token of the last state found lost.
    private var reported: String?
    /// This process, in the replication positions it records.
    let holder = RedisStateGuard.newToken()
    /// The primaries' replication histories when they were last found to hold
    /// every recorded position. Any change is checked again: a new primary (a
    /// failover) may lack writes, and a history gone (a primary demoted, such as
    /// a restarted one that served its old slots for a moment) takes its writes
    /// with it.
    private var verified: Set<String> = []

    init(store: InventoryStore, hot: RedisClient, repair: RedisRepair?, logger: Logger) {
        self.store = store
        self.hot = hot
        self.repair = repair
        self.logger = logger
    }

    /// The state to build on, once Redis holds it. The first worker on a database
    /// adopts the Redis it finds. A Redis without the state is reported and
    /// repaired (or, without `repair`, left for `reconcile --repair`: this throws).
    /// `reporting` is told why batches wait meanwhile.
    func establish(reporting: (String) -> Void) throws -> RedisStateSentinel {
        let standing: RedisStateRecord
        if let record = try store.redisState() {
            standing = record
        } else {
            let (record, adopted) = try store.adoptRedisState(RedisStateRecord(deployment: Self.newToken(), token: Self.newToken())) {
                try RedisStateSentinel($0).write(to: hot, ifAbsent: true)
            }
            if adopted { logger.info("Redis adopted as the state to build on", metadata: ["redis.state": "\(record.token)"]) }
            standing = record
        }
        var expected = RedisStateSentinel(standing)
        var found = try expected.found(in: hot)
        // A repair that ended between the two reads changed both: read again.
        while found != expected.token, let now = try store.redisState(), now.token != expected.token {
            expected = RedisStateSentinel(now)
            found = try expected.found(in: hot)
        }
        let loss: any Error
        if found == expected.token {
            let nodes = try hot.replication()
            guard let lost = try Self.lostWrites(store: store, nodes: nodes) else {
                verified = Set(nodes.map(\.replid))
                return expected
            }
            loss = lost
        } else {
            loss = RedisStateMismatch(expected: expected.token, found: found)
        }
        guard let repair else {
            reportLoss(expected, loss, repair: "wms-worker reconcile --repair")
            reporting("Redis lost its data: waiting for wms-worker reconcile --repair")
            throw loss
        }
        // Reported once the repairs' lock is held and the loss confirmed: a
        // sentinel deleted by another worker's repair under way is no loss.
        let started = ContinuousClock.now
        let (state, rebuilt) = try repair {
            reportLoss(expected, loss, repair: "by this worker, now")
            reporting("Redis lost its data: repairing it from PostgreSQL")
        }
        if rebuilt {
            logger.notice("Redis repaired from PostgreSQL: building on it again", metadata: [
                "redis.state": "\(state.token)", "duration": "\(ContinuousClock.now - started)",
            ])
        } else {
            logger.info("Redis was repaired by another process: building on it", metadata: ["redis.state": "\(state.token)"])
        }
        return RedisStateSentinel(state)
    }

    /// Logs and counts a loss, once per state lost however many times the
    /// batch waits for its repair.
    private func reportLoss(_ expected: RedisStateSentinel, _ loss: any Error, repair: String) {
        guard reported != expected.token else { return }
        reported = expected.token
        losses.increment()
        logger.error("Redis lost its data: nothing is built on it until it is repaired from PostgreSQL", metadata: [
            "redis.state": "\(expected.token)", "redis.loss": "\(loss)", "repair": "\(repair)",
        ])
    }

    /// Before a batch is applied, and again once its scripts ran: that the
    /// primaries hold what committed batches wrote (checked against PostgreSQL's
    /// positions when the primaries' histories changed; `RedisWritesLost`
    /// otherwise), and how far the batch's writes reached on each, to record
    /// with it. `settle` finishes the batch on the commit lane before a check:
    /// its positions count once it commits, and it may commit after the check.
    func checkReplication(settle: () throws -> Void) throws -> RedisReplicationPositions {
        let nodes = try hot.replication()
        try verify(nodes, settle: settle)
        // Without a replica (offset 0) there is no failover to lose writes in.
        return RedisReplicationPositions(holder: holder, offsets: Dictionary(
            nodes.filter { $0.offset > 0 }.map { ($0.replid, $0.offset) }, uniquingKeysWith: max))
    }

    /// That the primaries, as `nodes` tells (asked with a batch's first Redis
    /// round trip), hold what committed batches wrote, if their histories
    /// changed since the last check.
    func verify(_ nodes: [RedisReplication], settle: () throws -> Void) throws {
        let histories = Set(nodes.map(\.replid))
        guard histories != verified else { return }
        try settle()
        if let lost = try Self.lostWrites(store: store, nodes: nodes) { throw lost }
        verified = histories
    }

    /// Once a batch's scripts ran: how far its writes reached on each primary,
    /// checked as above. None to record when no primary replicated at the batch's
    /// first round trip (`before`): without a replica, no failover loses writes,
    /// and a round trip is saved.
    func positions(after before: [RedisReplication], settle: () throws -> Void) throws -> RedisReplicationPositions? {
        guard before.contains(where: { $0.offset > 0 }) else { return nil }
        return try checkReplication(settle: settle)
    }

    /// The recorded positions that no primary holds, or nil when every one is
    /// held (and then the rows the primaries made needless are pruned).
    public static func lostWrites(store: InventoryStore, hot: RedisClient) throws -> RedisWritesLost? {
        try lostWrites(store: store, nodes: hot.replication())
    }

    private static func lostWrites(store: InventoryStore, nodes: [RedisReplication]) throws -> RedisWritesLost? {
        let positions = try store.replicationPositions()
        let unheld = positions.filter { replid, offset in !nodes.contains { $0.holds(replid: replid, offset: offset) } }
        guard unheld.isEmpty else { return RedisWritesLost(unheld: unheld, primaries: nodes) }
        if !positions.isEmpty { try store.pruneReplicationPositions(read: positions, continued: Set(nodes.map(\.replid))) }
        return nil
    }

    public static func newToken() -> String { UUID().uuidString.lowercased() }
}

/// Committed batches wrote to Redis further than any primary holds now: a
/// failover promoted a replica that had not received their writes (Redis
/// replication is asynchronous), or a primary restarted without them. Redis
/// data loss, repaired from PostgreSQL like any other.
public struct RedisWritesLost: Error, Sendable, CustomStringConvertible {
    /// Replication history → the offset committed batches reached in it.
    public let unheld: [String: Int64]
    public let primaries: [RedisReplication]

    public var description: String {
        let reached = unheld.sorted { $0.key < $1.key }.map { "\($0.key) up to \($0.value)" }.joined(separator: ", ")
        let held = primaries.map { node in
            "\(node.node) holds \(node.replid) up to \(node.offset)"
                + (node.previousReplid.map { ", and \($0) before \(node.previousEnd)" } ?? "")
        }.joined(separator: "; ")
        return "Redis lost writes of committed batches (a failover to a replica that lacked them, or a primary restarted "
            + "without them): they reached \(reached), but no primary holds that (\(held))"
    }
}
