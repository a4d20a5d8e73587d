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

    /// `idle`: nothing comes after the loss until Redis is repaired (an idle
    /// worker checks every second: product pages read Redis); otherwise the
    /// next batch comes at once, and finds the loss itself.
    @Test(arguments: Loss.allCases, [false, true])
    func aLossIsRepairedBeforeTheNextBatchIsApplied(_ loss: Loss, idle: Bool) async throws {
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
        case .flushAll: _ = try await blocking { try RedisClient(url: try RedisURL(redis.url)).send("FLUSHALL") }
        case .restartWithoutPersistence:
            redis.stop()
            try redis.start()
        }
        let key = "\(sku)@L1"
        if idle {
            try await waitUntil("Redis repaired while idle\n\(worker.log.suffix(3000))", timeout: .seconds(30)) {
                try f.redisLevels([key], url: redis.url)[key] == [10, 4, 0, 0, 0, 0, 0, 6]
            }
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

/// A failover that loses acknowledged writes (contract, section 4; Redis
/// replication is asynchronous): the replica promoted lacks the last batches'
/// writes, which PostgreSQL committed, while the state sentinel, written long
/// before, is there. The worker reaches Redis through one address (a relay, as
/// a virtual IP or DNS name would be) that moves to the promoted replica.
@Suite struct RedisFailoverLossTests {
    enum Failover: String, CaseIterable, CustomTestStringConvertible {
        /// The replica is promoted before the last batch, which it never gets;
        /// the worker runs on.
        case lossWhileRunning
        /// The same, with the worker stopped before the address moves and a new
        /// one started after.
        case lossAcrossARestart
        /// The replica is promoted once it holds everything: nothing is lost,
        /// nothing repaired.
        case caughtUp

        var testDescription: String { rawValue }
    }

    @Test(arguments: Failover.allCases)
    func aFailoverThatLostCommittedWritesIsRepaired(_ failover: Failover) async throws {
        let f = try await PipelineFixture.create()
        let primary = try PrivateRedis()
        let replica = try PrivateRedis(arguments: ["--replicaof", "127.0.0.1", String(primary.port)])
        let address = try TCPRelay(upstreamHost: "127.0.0.1", upstreamPort: primary.port)
        let url = "redis://127.0.0.1:\(address.port)/0"
        let environment = f.workerEnvironment.merging(["WMS_REDIS_URL": url, "WMS_DISPLAY_CACHE_URL": url]) { $1 }
        let first = try WorkerProcess(["run"], environment: environment)
        let sku = f.sku("A")
        let key = "\(sku)@L1"
        // 10 received and 4 allocated to O-1, which the replica gets.
        try await blocking { try f.produce([
            WMSEvents.receiving("\(f.id)-r1", at: "L1", [(sku, 10)]),
            OrderEvents.confirmed("\(f.id)-c1", order: "O-1", [("1", sku, "L1", 4, nil)]),
        ], partition: 0) }
        try await waitForAllocations(f, count: 1, first)
        try await waitUntil("the replica caught up") { try Self.offset(replica) == (try Self.offset(primary)) }
        if failover != .caughtUp { _ = try await blocking { try Self.client(replica).send("REPLICAOF", "NO", "ONE") } }
        // 5 more allocated to O-2: committed, but on the primary alone when the
        // replica was promoted before.
        try await blocking { try f.produce([OrderEvents.confirmed("\(f.id)-c2", order: "O-2", [("1", sku, "L1", 5, nil)])], partition: 0) }
        try await waitForAllocations(f, count: 2, first)
        if failover == .caughtUp {
            try await waitUntil("the replica caught up") { try Self.offset(replica) == (try Self.offset(primary)) }
            _ = try await blocking { try Self.client(replica).send("REPLICAOF", "NO", "ONE") }
        }
        if failover == .lossAcrossARestart {
            first.signal(SIGTERM)
            #expect(try await blocking { try first.waitForExit(timeout: .seconds(40)) } == 0)
        }
        address.moveUpstream(to: replica.port)
        primary.stop()
        let restarted = failover == .lossAcrossARestart
        let firstLog = restarted ? first.log : ""
        let worker = restarted ? try WorkerProcess(["run"], environment: environment) : first
        // 3 more for O-3: 1 is available, so it waits. On a Redis that lost O-2's
        // allocation, 6 would look available and 3 be allocated: 12 of 10 on hand.
        try await blocking { try f.produce([OrderEvents.confirmed("\(f.id)-c3", order: "O-3", [("1", sku, "L1", 3, nil)])], partition: 0) }
        try await waitForAllocations(f, count: 3, worker)
        let log = firstLog + worker.log
        let rows = try await blocking { try f.allocationRows() }
        #expect(rows["O-3/1"] == "backordered/backordered/0", "\(rows)\n\(log.suffix(3000))")
        #expect(try await blocking { try f.postgresLevels()[key] } == [10, 9, 0, 0, 0, 0, 0])
        try await waitUntil("Redis equal to PostgreSQL\n\(worker.log.suffix(2000))") {
            try f.redisLevels([key], url: url)[key] == (try f.postgresLevels()[key] ?? []) + [1]
        }
        let lost = failover != .caughtUp
        #expect(log.contains("Redis lost writes of committed batches") == lost, "\(log.suffix(3000))")
        let base = try await blocking { try worker.httpBase() }
        let metrics = await httpGet(base + "/metrics")?.body ?? ""
        #expect(metricValue(metrics, "wms_redis_data_losses_total") == (lost ? 1 : 0), "\(metrics)")

        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
        try await f.schema.drop()
    }

    private static func client(_ redis: PrivateRedis) throws -> RedisClient { try RedisClient(url: try RedisURL(redis.url)) }

    /// How far its history runs, a replica's too.
    private static func offset(_ redis: PrivateRedis) throws -> Int64 {
        let info = try client(redis).send("INFO", "replication").string ?? ""
        return try RedisReplication(info: info, node: RedisAddress(host: "127.0.0.1", port: Int(redis.port))).offset
    }

    private func waitForAllocations(_ f: PipelineFixture, count: Int, _ worker: WorkerProcess) async throws {
        try await waitUntil("\(count) allocation rows\n\(worker.log.suffix(3000))") { try f.allocationRows().count >= count }
    }
}

/// Redis at its `maxmemory` with `noeviction` refuses writes: the worker stops
/// applying, reports it (not ready, the error in the log), corrupts nothing,
/// and applies everything exactly once when memory is given back.
@Suite struct RedisOutOfMemoryTests {
    @Test func aFullRedisHoldsTheStreamBackWithoutCorruptingIt() async throws {
        let f = try await PipelineFixture.create()
        let redis = try PrivateRedis(arguments: ["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment.merging([
            "WMS_REDIS_URL": redis.url, "WMS_DISPLAY_CACHE_URL": redis.url,
        ]) { $1 })
        let base = try await blocking { try worker.httpBase() }
        // Distinct SKUs, each a hash and marks more: far past 3 MB.
        let events = (1...12_000).map { WMSEvents.receiving("\(f.id)-\($0)", at: "L1", [(f.sku("S\($0)"), $0 % 7 + 1)]) }
        try await blocking { try f.produce(events, partition: 0) }
        try await blocking { try worker.waitForLog("OOM", timeout: .seconds(90)) }
        let notReady = await waitForHTTP(base + "/readyz", timeout: .seconds(30)) { $0?.status == 503 }
        #expect(notReady?.body.contains("OOM") == true, "\(notReady?.body ?? "no answer")")
        let appliedWhileFull = try await blocking { try f.query("SELECT count(*) FROM inventory_events").rows[0][0].int() }
        #expect(appliedWhileFull < Int64(events.count))

        _ = try await blocking { try RedisClient(url: try RedisURL(redis.url)).send("CONFIG", "SET", "maxmemory", "0") }
        try await waitUntil("every event applied\n\(worker.log.suffix(2000))", timeout: .seconds(120)) {
            try f.query("SELECT count(*) FROM inventory_events").rows[0][0].int() == Int64(events.count)
        }
        let keys = (1...events.count).map { "\(f.sku("S\($0)"))@L1" }
        try await waitUntil("Redis equal to PostgreSQL") {
            let postgres = try f.postgresLevels()
            let hashes = try f.redisLevels(keys, url: redis.url)
            return keys.allSatisfy { key in hashes[key].map { Array($0.dropLast()) } == postgres[key] }
        }
        let levels = try await blocking { try f.postgresLevels() }
        #expect(keys.enumerated().allSatisfy { index, key in levels[key]?.first == Int64((index + 1) % 7 + 1) }, "an event lost or doubled")
        #expect(await waitForHTTP(base + "/readyz", timeout: .seconds(30)) { $0?.status == 200 }?.status == 200)

        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
        try await f.schema.drop()
    }
}
