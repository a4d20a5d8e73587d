import Foundation
import Kafka
import Testing
import TestSupport

/// The broker out of reach while the worker runs: `/readyz` says so, the
/// client errors are counted by name (`wms_kafka_client_errors_total`), and the
/// worker is ready again once the broker returns.
@Suite struct KafkaOutageTests {
    @Test func brokerErrorsAreCountedAndTheWorkerComesBack() async throws {
        let f = try await PipelineFixture.create()
        let cluster = try await blocking { UncheckedBox(try KafkaMockCluster(brokers: 1, logger: PipelineFixture.logger)) }
        try await blocking { try cluster.value.createTopic(f.topics[0], partitions: 1) }
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment.merging([
            "WMS_KAFKA_BROKERS": cluster.value.bootstrapServers,
        ]) { $1 })
        let base = try await blocking { try worker.httpBase() }
        #expect(await waitForHTTP(base + "/readyz", timeout: .seconds(30)) { $0?.status == 200 }?.status == 200)

        try await blocking { try ChildProcesses.noneStarting { try cluster.value.setBroker(1, up: false) } }
        @Sendable func counted(_ exposition: String?) -> Bool {
            (exposition ?? "").split(separator: "\n").contains { $0.hasPrefix("wms_kafka_client_errors_total{") && !$0.hasSuffix(" 0") }
        }
        let metrics = await waitForHTTP(base + "/metrics", timeout: .seconds(30)) { counted($0?.body) }
        #expect(counted(metrics?.body), "no client error counted:\n\(worker.log.suffix(2000))")
        try await blocking { try ChildProcesses.noneStarting { try cluster.value.setBroker(1, up: true) } }
        #expect(await waitForHTTP(base + "/readyz", timeout: .seconds(60)) { $0?.status == 200 }?.status == 200)

        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
        try await f.schema.drop()
    }
}
