import Foundation

/// Test-only crash points between the steps of a batch. `WMS_TEST_FAULT=STEP` (or
/// `STEP:N`, the Nth time that step is reached) makes the process abort there, as a
/// `kill -9` would, so tests can prove a restart repairs every in-between state.
/// Unset, it costs one comparison per step.
public struct FaultPoints: Sendable {
    public enum Step: String, Sendable, CaseIterable {
        case afterLookup = "after-lookup"
        case afterRedis = "after-redis"
        case afterDisplayInvalidation = "after-display"
        case afterPostgres = "after-postgres"
        case afterRelease = "after-release"
        case afterPublish = "after-publish"
        case afterMarkPublished = "after-mark-published"
        case afterCommit = "after-commit"
    }

    private let step: Step?
    private let occurrence: Int
    private let counter = Counter()

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let spec = environment["WMS_TEST_FAULT"]?.split(separator: ":") ?? []
        step = spec.first.flatMap { Step(rawValue: String($0)) }
        occurrence = spec.count > 1 ? Int(spec[1]) ?? 1 : 1
    }

    func reached(_ step: Step) {
        guard step == self.step, counter.increment() == occurrence else { return }
        FileHandle.standardError.write(Data("wms-worker: test fault point \(step.rawValue) reached, aborting\n".utf8))
        abort()
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() -> Int { lock.withLock { value += 1; return value } }
    }
}
