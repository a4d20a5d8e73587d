import Foundation
import Redis
import Testing
import TestSupport

/// `wms-worker reconcile` as the README's runbook uses it: exit 0 when Redis and
/// PostgreSQL agree, 2 on drift (after a Redis loss), `--repair` refused while a
/// worker of the group runs, then rebuilding Redis. On a Redis database of its own
/// (reconcile reads the whole database), which it empties first.
@Suite(.serialized) struct ReconcileCommandTests {
    @Test func exitStatusFollowsDriftAndRepairWaitsForTheGroupToStop() async throws {
        let f = try await PipelineFixture.create()
        let redisURL = try TestEnvironment.redisURL(ownDatabase: 12)
        let environment = f.workerEnvironment.merging(["WMS_REDIS_URL": redisURL]) { $1 }
        let flush = { try await blocking { _ = try RedisClient(url: RedisURL(redisURL)).flushAll() } }
        try await flush()
        try await blocking { try f.produce([WMSEvents.receiving("\(f.id)-1", at: "FC1", [(f.sku("A"), 4)])]) }

        func reconcile(_ arguments: [String]) async throws -> (status: Int32, output: String) {
            let command = try WorkerProcess(["reconcile"] + arguments, environment: environment)
            let status = try await blocking { try command.waitForExit(timeout: .seconds(90)) }
            return (status, command.log)
        }
        func running() async throws -> WorkerProcess {
            let worker = try WorkerProcess(["run"], environment: environment)
            let base = try await blocking { try worker.httpBase() }
            _ = await waitForHTTP(base + "/metrics", timeout: .seconds(60)) { metricValue($0?.body ?? "", "wms_assigned_partitions") ?? 0 > 0 }
            return worker
        }

        let first = try await running()
        #expect(await ShutdownTests.waitForEvents(f, atLeast: 1, timeout: .seconds(60)))
        first.signal(SIGTERM)
        #expect(try await blocking { try first.waitForExit(timeout: .seconds(40)) } == 0)
        let clean = try await reconcile([])
        #expect(clean.status == 0, "\(clean.output)")
        #expect(clean.output.contains("0 of 1 SKU-locations drift"))

        try await flush()
        let lost = try await reconcile(["--json"])
        #expect(lost.status == 2, "\(lost.output)")
        let json = lost.output.split(separator: "\n").filter { !$0.hasPrefix("time=") }.joined(separator: "\n")
        let report = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(report?["driftedSKULocations"] as? Int == 1, "\(lost.output)")

        let holding = try await running()
        let refused = try await reconcile(["--repair"])
        #expect(refused.status == 1)
        #expect(refused.output.contains("has other active members"), "\(refused.output)")
        holding.signal(SIGTERM)
        #expect(try await blocking { try holding.waitForExit(timeout: .seconds(40)) } == 0)

        let repaired = try await reconcile(["--repair"])
        #expect(repaired.status == 0, "\(repaired.output)")
        #expect(repaired.output.contains("repair: after, no drift"))
        #expect(try await reconcile([]).status == 0)
        try await flush()
        try await f.schema.drop()
    }

    /// Order line drift alone is drift: a queue member no waiting line accounts for.
    @Test func orderLineDriftExitsTwo() async throws {
        let f = try await PipelineFixture.create()
        let redisURL = try TestEnvironment.redisURL(ownDatabase: 12)
        let environment = f.workerEnvironment.merging(["WMS_REDIS_URL": redisURL]) { $1 }
        let queue = "inventory:backorders:{\(f.sku("A"))}:FC1"
        try await blocking {
            let redis = try RedisClient(url: RedisURL(redisURL))
            try redis.flushAll()
            try redis.send("ZADD", queue, 1, "O9|1|3")
        }
        let command = try WorkerProcess(["reconcile"], environment: environment)
        let status = try await blocking { try command.waitForExit(timeout: .seconds(90)) }
        #expect(status == 2, "\(command.log)")
        #expect(command.log.contains("1 order lines drift"), "\(command.log)")
        #expect(command.log.contains("0 of 0 SKU-locations drift"), "\(command.log)")
        try await blocking { _ = try RedisClient(url: RedisURL(redisURL)).flushAll() }
        try await f.schema.drop()
    }
}
