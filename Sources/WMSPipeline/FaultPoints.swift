import Foundation

/// Test-only crash points between the steps of a batch. `WMS_TEST_FAULT=STEP` (or
/// `STEP:N`, the Nth time that step is reached) makes the process abort there, as a
/// `kill -9` would, so tests can prove a restart repairs every in-between state.
/// `WMS_TEST_FAULT_HOLD=STEP` stops the commit lane at a step of its own for good,
/// so that the next batch's steps run while one is held there: with
/// `WMS_TEST_FAULT=after-redis:2`, the worker dies with batch N in PostgreSQL and
/// N+1 applied in Redis. Unset, it costs one comparison per step.
public struct FaultPoints: Sendable {
    public enum Step: String, Sendable, CaseIterable {
        case afterLookup = "after-lookup"
        case afterRedis = "after-redis"
        case afterDisplayInvalidation = "after-display"
        /// Inside the batch's transaction, its rows written, before COMMIT.
        case beforePostgresCommit = "before-postgres-commit"
        case afterPostgres = "after-postgres"
        case afterRelease = "after-release"
        case afterPublish = "after-publish"
        case afterMarkPublished = "after-mark-published"
        case afterCommit = "after-commit"
    }

    private let step: Step?
    private let occurrence: Int
    private let hold: Step?
    private let counter = Counter()

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let spec = environment["WMS_TEST_FAULT"]?.split(separator: ":") ?? []
        step = spec.first.flatMap { Step(rawValue: String($0)) }
        occurrence = spec.count > 1 ? Int(spec[1]) ?? 1 : 1
        hold = environment["WMS_TEST_FAULT_HOLD"].flatMap(Step.init(rawValue:))
    }

    /// `idle`: the batch holds no message (an idle run, every few seconds while
    /// caught up): it passes every point, so that a test's Nth batch is the Nth
    /// that carries messages, however slowly they arrive.
    func reached(_ step: Step, idle: Bool) {
        guard !idle else { return }
        if step == hold {
            FileHandle.standardError.write(Data("wms-worker: test fault point \(step.rawValue) reached, holding\n".utf8))
            counter.hold()
        }
        guard step == self.step, counter.increment() == occurrence else { return }
        // The crash comes with the other batch held where it was asked to be.
        if hold != nil { counter.waitForHold(timeout: 30) }
        FileHandle.standardError.write(Data("wms-worker: test fault point \(step.rawValue) reached, aborting\n".utf8))
        abort()
    }

    private final class Counter: @unchecked Sendable {
        private let condition = NSCondition()
        private var value = 0
        private var holding = false

        func increment() -> Int { condition.withLock { value += 1; return value } }

        /// Never returns: the process ends at the fault point.
        func hold() -> Never {
            condition.withLock {
                holding = true
                condition.broadcast()
            }
            while true { sleep(60) }
        }

        func waitForHold(timeout: TimeInterval) {
            let deadline = Date(timeIntervalSinceNow: timeout)
            condition.withLock {
                while !holding, condition.wait(until: deadline) {}
            }
        }
    }
}
