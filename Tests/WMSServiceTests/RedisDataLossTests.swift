import Foundation
import Redis
import Testing
import TestSupport


/// Redis losing its data while the worker runs (contract, section 4): detected
/// before the next batch is applied, reported (a log line, a metric) and repaired
/// from PostgreSQL, so that no decision is made on the empty Redis.
@Suite struct RedisDataLossTests {
    enum Loss: String, CaseIterable, CustomTestStringConvertible {
        /// Everything deleted under the worker's connection.
        case flushAll
        /// The server killed and a new one started on the same port, with no persistence.
        case restartWithoutPersistence

        var testDescription: String { rawValue }
    }

    @Test(arguments: Loss.allCases)
    func aLossIsRepairedBeforeTheNextBatchIsApplied(_ loss: Loss) async throws {
        let f = try await PipelineFixture.create()
        let redis = try PrivateRedis()
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment.merging([
            "WMS_REDIS_URL": redis.url, "WMS_DISPLAY_CACHE_URL": redis.url,
        ]) { $1 })
        let sku = f.sku("A")
        // Before the loss: 10 received, 4 allocated to O-1.
        try await blocking { try f.produce([
            WMSEvents.receiving("\(f.id)-r1", at: "L1", [(sku, 10)]),
            OrderEvents.confirmed("\(f.id)-c1", order: "O-1", [("1", sku, "L1", 4, nil)]),
        ], partition: 0) }
        try await waitForAllocations(f, count: 1, worker)

        switch loss {
        case .flushAll: _ = try await blocking { try RedisConnection(url: try RedisURL(redis.url)).send("FLUSHALL") }
        case .restartWithoutPersistence:
            redis.stop()
            try redis.start()
        }
        // After it: 5 more for O-2, which the 6 still available cover (an empty
        // Redis would backorder them), and 1 more received.
        try await blocking { try f.produce([
            OrderEvents.confirmed("\(f.id)-c2", order: "O-2", [("1", sku, "L1", 5, nil)]),
            WMSEvents.receiving("\(f.id)-r2", at: "L1", [(sku, 1)]),
        ], partition: 0) }
        try await waitForAllocations(f, count: 2, worker)
        let rows = try await blocking { try f.allocationRows() }
        #expect(rows["O-2/1"]?.hasPrefix("available/allocated") == true, "\(rows)\n\(worker.log.suffix(3000))")
        let key = "\(sku)@L1"
        try await waitUntil("Redis equal to PostgreSQL") {
            try f.redisLevels([key], url: redis.url)[key] == (try f.postgresLevels()[key] ?? []) + [2]
        }
        #expect(try await blocking { try f.postgresLevels()[key] } == [11, 9, 0, 0, 0, 0, 0])
        #expect(worker.log.contains("Redis lost its data"), "\(worker.log.suffix(3000))")
        let base = try await blocking { try worker.httpBase() }
        let metrics = await httpGet(base + "/metrics")?.body ?? ""
        #expect(metricValue(metrics, "wms_redis_data_losses_total") == 1, "\(metrics)")

        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
        try await f.schema.drop()
    }

    private func waitForAllocations(_ f: PipelineFixture, count: Int, _ worker: WorkerProcess) async throws {
        try await waitUntil("\(count) allocation rows\n\(worker.log.suffix(3000))") { try f.allocationRows().count >= count }
    }
}
