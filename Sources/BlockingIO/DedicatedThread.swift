import Foundation

/// An OS thread of its own that runs Swift jobs one at a time.
///
/// librdkafka, hiredis and libpq block the calling thread. Swift's cooperative
/// pool has one thread per core (two here), so a blocking call there starves every
/// other task (swift-kafka-client issue #221). Code that makes such calls runs on
/// a `DedicatedThread` instead: as an actor's executor (`unownedExecutor`), or as a
/// task executor preference (`withTaskExecutorPreference(thread) { ... }`).
public final class DedicatedThread: SerialExecutor, TaskExecutor, @unchecked Sendable {
    // All mutable state is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [Work] = []
    private var headIndex = 0
    private var stopping = false
    public let name: String

    /// A Swift job (an actor's or a task's), or a plain block (`perform`).
    private enum Work {
        case job(UnownedJob)
        case block(@Sendable () -> Void)
    }

    /// Marks the threads owned by this type, so blocking wrappers can assert where they run.
    private static let threadKey = "wms.dedicated-thread"

    public init(name: String) {
        self.name = name
        let thread = Thread { [self] in self.runLoop() }
        thread.name = name
        thread.start()
    }

    /// True on a thread owned by a `DedicatedThread`.
    public static var isCurrent: Bool {
        Thread.current.threadDictionary[threadKey] != nil
    }

    /// Lets queued jobs finish, then ends the thread. Jobs enqueued afterwards still run
    /// (a job dropped on the floor would leave its task suspended forever), so stopping
    /// is a request to exit once the queue is empty.
    public func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        append(.job(UnownedJob(job)))
    }

    /// Runs `block` on this thread, after the work queued before it; returns at once.
    public func perform(_ block: @escaping @Sendable () -> Void) {
        append(.block(block))
    }

    private func append(_ work: Work) {
        condition.lock()
        jobs.append(work)
        condition.signal()
        condition.unlock()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    /// True on this very thread.
    public var isCurrentThread: Bool {
        Thread.current.threadDictionary[Self.threadKey] as? UInt == UInt(bitPattern: ObjectIdentifier(self))
    }

    public func checkIsolated() {
        precondition(isCurrentThread, "not on dedicated thread \(name)")
    }

    private func runLoop() {
        Thread.current.threadDictionary[Self.threadKey] = UInt(bitPattern: ObjectIdentifier(self))
        while let work = nextWork() {
            switch work {
            case .job(let job): job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
            case .block(let block): block()
            }
        }
    }

    private func nextWork() -> Work? {
        condition.lock()
        defer { condition.unlock() }
        while headIndex == jobs.count {
            if stopping { return nil }
            condition.wait()
        }
        let job = jobs[headIndex]
        headIndex += 1
        if headIndex == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            headIndex = 0
        }
        return job
    }
}

extension DedicatedThread {
    /// Runs `body` on this thread and returns its result to the caller's context.
    /// For one-off blocking calls from async code (tests, commands).
    public func run<T: Sendable>(_ body: @Sendable @escaping () throws -> T) async throws -> T {
        try await withTaskExecutorPreference(self) {
            try body()
        }
    }
}
