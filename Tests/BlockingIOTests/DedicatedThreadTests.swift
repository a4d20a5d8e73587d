import BlockingIO
import Foundation
import Testing

@Suite struct DedicatedThreadTests {
    @Test func runsWorkOnItsOwnThreadNotThePool() async throws {
        let thread = DedicatedThread(name: "wms.test.run")
        defer { thread.stop() }
        #expect(!DedicatedThread.isCurrent)
        let onIt = try await thread.run { thread.isCurrentThread }
        #expect(onIt)
        let other = DedicatedThread(name: "wms.test.other")
        defer { other.stop() }
        #expect(try await other.run { DedicatedThread.isCurrent && !thread.isCurrentThread })
    }

    actor Counter {
        let thread: DedicatedThread
        var value = 0
        nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }
        init(thread: DedicatedThread) { self.thread = thread }

        func increment() -> Bool {
            value += 1
            return DedicatedThread.isCurrent
        }
    }

    @Test func pinsAnActorAndSerializesItsJobs() async throws {
        let thread = DedicatedThread(name: "wms.test.actor")
        defer { thread.stop() }
        let counter = Counter(thread: thread)
        let allOnThread = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<1000 { group.addTask { await counter.increment() } }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(allOnThread)
        #expect(await counter.value == 1000)
    }

    /// Blocking calls on two dedicated threads overlap; on the two-thread pool they
    /// would hold it whole.
    @Test func blockingCallsOnSeparateThreadsRunSideBySide() async throws {
        let start = ContinuousClock.now
        async let first: Void = DedicatedThread(name: "wms.test.a").run { usleep(300_000) }
        async let second: Void = DedicatedThread(name: "wms.test.b").run { usleep(300_000) }
        _ = try await (first, second)
        #expect(ContinuousClock.now - start < .milliseconds(550))
    }

    @Test func rethrowsErrors() async {
        struct Boom: Error {}
        let thread = DedicatedThread(name: "wms.test.throw")
        defer { thread.stop() }
        await #expect(throws: Boom.self) { try await thread.run { throw Boom() } }
    }
}
