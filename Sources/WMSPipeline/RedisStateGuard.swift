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
/// Blocking: on the pipeline thread, with the pipeline's own connections.
public final class RedisStateGuard {
    let store: InventoryStore
    let hot: RedisClient
    let repair: RedisRepair?
    let logger: Logger
    private let losses = Counter(label: "wms_redis_data_losses_total")
    /// The token of the last state found lost.
    private var reported: String?

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
        if found == expected.token { return expected }

        let mismatch = RedisStateMismatch(expected: expected.token, found: found)
        guard let repair else {
            reportLoss(expected, found: found, repair: "wms-worker reconcile --repair")
            reporting("Redis lost its data: waiting for wms-worker reconcile --repair")
            throw mismatch
        }
        // Reported once the repairs' lock is held and the loss confirmed: a
        // sentinel deleted by another worker's repair under way is no loss.
        let started = ContinuousClock.now
        let (state, rebuilt) = try repair {
            reportLoss(expected, found: found, repair: "by this worker, now")
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
    private func reportLoss(_ expected: RedisStateSentinel, found: String?, repair: String) {
        guard reported != expected.token else { return }
        reported = expected.token
        losses.increment()
        logger.error("Redis lost its data: nothing is built on it until it is repaired from PostgreSQL", metadata: [
            "redis.state": "\(expected.token)", "redis.sentinel": "\(found ?? "absent")", "repair": "\(repair)",
        ])
    }

    public static func newToken() -> String { UUID().uuidString.lowercased() }
}
