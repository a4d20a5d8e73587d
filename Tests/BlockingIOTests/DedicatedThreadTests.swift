import BlockingIO
import Dispatch
import Foundation
import Testing

@Suite struct DedicatedThreadTests {
    @Test func runsWorkOnItsOwnThreadNotThePool() async throws {
        let thread = DedicatedThread(name: "wms.test.run")
        defer { thread.stop() }
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
            return thread.isCurrentThread
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

    /// Blocking calls on two dedicated threads run side by side: each waits for the
    /// other, which would never happen if one had to finish before the other began.
    @Test func blockingCallsOnSeparateThreadsRunSideBySide() async throws {
        let (firstArrived, secondArrived) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let (a, b) = (DedicatedThread(name: "wms.test.a"), DedicatedThread(name: "wms.test.b"))
        defer { a.stop(); b.stop() }
        async let first = a.run {
            firstArrived.signal()
            return secondArrived.wait(timeout: .now() + 10) == .success
        }
        async let second = b.run {
            secondArrived.signal()
            return firstArrived.wait(timeout: .now() + 10) == .success
        }
        let (firstSaw, secondSaw) = try await (first, second)
        #expect(firstSaw && secondSaw)
    }

    @Test func rethrowsErrors() async {
        struct Boom: Error {}
        let thread = DedicatedThread(name: "wms.test.throw")
        defer { thread.stop() }
        await #expect(throws: Boom.self) { try await thread.run { throw Boom() } }
    }
}
