import Foundation
import Kafka
import Testing
import TestSupport

/// Section 7: SIGTERM stops fetching, finishes and commits the batch in hand,
/// leaves the group and exits 0. Nothing is lost or applied twice, and the
/// partitions move to the other member within seconds. A hanging batch cannot
/// hold the shutdown up past a second signal or the shutdown timeout.
@Suite struct ShutdownTests {
    @Test func sigtermMidStreamExitsCleanlyAndHandsThePartitionsOver() async throws {
        let f = try await PipelineFixture.create()
        let skus = (0..<12).map { f.sku("S\($0)") }
        let total = 3000
        let receipts = (0..<total).map { WMSEvents.receiving("\(f.id)-\($0)", at: "FC\($0 % 2)", [(skus[$0 % 12], 1 + $0 % 5)]) }
        let expected = (0..<total).reduce(into: [String: Int64]()) { sums, index in
            sums["\(skus[index % 12])@FC\(index % 2)", default: 0] += Int64(1 + index % 5)
        }
        // (librdkafka's mock broker holds a rebalance after a LeaveGroup until the
        // session timeout of the members, where real Kafka rebalances at once: the
        // dev settings' 6 s session timeout bounds the handover here.)
        let environment = f.workerEnvironment

        // A steady stream over all four partitions while the workers run.
        let producing = Task {
            try await blocking("producer") {
                for (index, start) in stride(from: 0, to: total, by: 100).enumerated() {
                    try f.produce(Array(receipts[start..<start + 100]), partition: Int32(index % 4))
                    usleep(150_000)
                }
            }
        }
        let first = try WorkerProcess(["run"], environment: environment)
        _ = try await blocking { try first.httpBase() }
        #expect(await Self.waitForEvents(f, atLeast: 300, timeout: .seconds(60)), "\(first.log.suffix(2000))")
        let second = try WorkerProcess(["run"], environment: environment)
        let secondBase = try await blocking { try second.httpBase() }
        // Both hold partitions: the group has been shared.
        let shared = await waitForHTTP(secondBase + "/metrics", timeout: .seconds(60)) { answer in
            (metricValue(answer?.body ?? "", "wms_assigned_partitions") ?? 0) >= 1
        }
        #expect((metricValue(shared?.body ?? "", "wms_assigned_partitions") ?? 0) < 4, "the second worker never shared the group")

        first.signal(SIGTERM)
        let signalled = ContinuousClock.now
        let status = try await blocking { try first.waitForExit(timeout: .seconds(40)) }
        let exitedAfter = ContinuousClock.now - signalled
        #expect(status == 0, "\(first.log.suffix(3000))")
        #expect(first.log.contains("stopping: leaving the consumer group"))
        let takenOver = await waitForHTTP(secondBase + "/metrics", timeout: .seconds(30)) { answer in
            metricValue(answer?.body ?? "", "wms_assigned_partitions") == 4
        }
        let handedOverAfter = ContinuousClock.now - signalled
        #expect(metricValue(takenOver?.body ?? "", "wms_assigned_partitions") == 4)
        #expect(handedOverAfter < .seconds(20), "partitions moved after \(handedOverAfter) (exit after \(exitedAfter))")

        try await producing.value
        #expect(await Self.waitForEvents(f, atLeast: Int64(total), timeout: .seconds(90)), "\(second.log.suffix(2000))")
        second.signal(SIGTERM)
        #expect(try await blocking { try second.waitForExit(timeout: .seconds(40)) } == 0)

        let (events, ledger, levels) = try await blocking {
            (try f.query("SELECT count(*) FROM inventory_events").first![0].int(),
             try f.query("SELECT count(*) FROM inventory_transactions").first![0].int(), try f.postgresLevels())
        }
        #expect(events == Int64(total))
        #expect(ledger == Int64(total))
        #expect(levels.mapValues { $0[0] } == expected)
        let redis = try await blocking { try f.redisLevels(expected.keys) }
        #expect(redis.mapValues { $0[0] } == expected)
        try await f.schema.drop()
    }

    /// A batch that hangs (PostgreSQL stops answering mid-batch) holds up the
    /// graceful shutdown: a second signal exits at once, and without one the
    /// shutdown timeout ends it.
    @Test(arguments: ["second signal", "timeout"])
    func aHangingBatchCannotHoldTheShutdownUp(ending: String) async throws {
        let f = try await PipelineFixture.create()
        let postgres = try TCPRelay(upstreamHost: "127.0.0.1", upstreamPort: ReadinessTests.port(of: TestEnvironment.postgresURL))
        let postgresURL = f.schema.url.replacingOccurrences(of: ":\(ReadinessTests.port(of: TestEnvironment.postgresURL))/", with: ":\(postgres.port)/")
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment.merging([
            "WMS_POSTGRES_URL": postgresURL, "WMS_SHUTDOWN_TIMEOUT": "3",
        ]) { $1 })
        let base = try await blocking { try worker.httpBase() }
        _ = await waitForHTTP(base + "/readyz", timeout: .seconds(60)) { $0?.status == 200 }
        postgres.pause()
        try await blocking { try f.produce([WMSEvents.receiving("\(f.id)-1", at: "FC1", [(f.sku("A"), 1)])]) }
        try await Task.sleep(for: .seconds(2))      // the batch is waiting on PostgreSQL
        worker.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(500))
        #expect(worker.process.isRunning, "the shutdown did not wait for the batch in hand")
        let signalled = ContinuousClock.now
        if ending == "second signal" { worker.signal(SIGTERM) }
        let status = try await blocking { try worker.waitForExit(timeout: .seconds(10)) }
        #expect(status == 1)
        #expect(worker.log.contains(ending == "second signal" ? "second signal: exiting at once" : "graceful shutdown took longer than the timeout"),
                "\(worker.log.suffix(2000))")
        if ending == "second signal" { #expect(ContinuousClock.now - signalled < .seconds(5)) }
        postgres.resume()
        postgres.stop()
        try await f.schema.drop()
    }

    static func waitForEvents(_ f: PipelineFixture, atLeast count: Int64, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let n = try? await blocking("count", { try f.query("SELECT count(*) FROM inventory_events").first![0].int() }), n >= count { return true }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return false
    }
}
