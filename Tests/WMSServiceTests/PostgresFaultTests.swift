import Foundation
import Testing
import TestSupport

/// PostgreSQL faults (issue 11) under a running worker: a connection cut in the
/// middle of a batch's COMMIT, before the server has it (the transaction rolls
/// back) or after (it commits, the answer is lost: the outcome is unknown to the
/// worker), and a slow PostgreSQL. Every event lands exactly once.
@Suite struct PostgresFaultTests {
    enum Fault: String, CaseIterable, CustomTestStringConvertible {
        case commitCutBeforeTheServer
        case commitCutAfterTheServer
        /// 20 ms more on every chunk each way: the batches slow down, none fails.
        case slowServer

        var testDescription: String { rawValue }
    }

    @Test(arguments: Fault.allCases)
    func everyEventLandsOnceThroughAPostgresFault(_ fault: Fault) async throws {
        let f = try await PipelineFixture.create()
        let upstreamPort = ReadinessTests.port(of: TestEnvironment.postgresURL)
        let relay = try TCPRelay(upstreamHost: "127.0.0.1", upstreamPort: upstreamPort)
        let postgresURL = f.schema.url.replacingOccurrences(of: ":\(upstreamPort)/", with: ":\(relay.port)/")
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment.merging(["WMS_POSTGRES_URL": postgresURL]) { $1 })
        let base = try await blocking { try worker.httpBase() }
        let sku = f.sku("S")
        let first = (1...20).map { WMSEvents.receiving("\(f.id)-a\($0)", at: "FC1", [(sku, 1)]) }
        let second = (1...20).map { WMSEvents.receiving("\(f.id)-b\($0)", at: "FC1", [(sku, 2)]) }
        try await blocking { try f.produce(first, partition: 0) }
        try await waitUntil("the first events applied\n\(worker.log.suffix(2000))") {
            try f.query("SELECT count(*) FROM inventory_events").rows[0][0].int() == 20
        }
        switch fault {
        case .commitCutBeforeTheServer: relay.cutNextCommit(.beforeTheServer)
        case .commitCutAfterTheServer: relay.cutNextCommit(.afterTheServer)
        case .slowServer: relay.setLatency(.milliseconds(20))
        }
        try await blocking { try f.produce(second, partition: 0) }
        try await waitUntil("every event applied\n\(worker.log.suffix(3000))", timeout: .seconds(90)) {
            try f.query("SELECT count(*) FROM inventory_events").rows[0][0].int() == 40
        }
        let key = "\(sku)@FC1"
        try await waitUntil("Redis equal to PostgreSQL") {
            try f.redisLevels([key])[key] == (try f.postgresLevels()[key] ?? []) + [60]
        }
        #expect(try await blocking { try f.postgresLevels()[key] } == [60, 0, 0, 0, 0, 0, 0], "an event lost or doubled")
        let metrics = await httpGet(base + "/metrics")?.body ?? ""
        let retries = metricValue(metrics, #"wms_store_retries_total{store="postgres"}"#) ?? -1
        switch fault {
        case .commitCutBeforeTheServer, .commitCutAfterTheServer:
            #expect(relay.commitWasCut, "no COMMIT went through the relay")
            #expect(retries >= 1, "the cut went unnoticed")
        case .slowServer:
            #expect(retries == 0, "a slow PostgreSQL made batches fail:\n\(worker.log.suffix(2000))")
        }
        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
        try await f.schema.drop()
    }
}
