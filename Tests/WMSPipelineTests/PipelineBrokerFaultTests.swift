import Foundation
import Kafka
import Testing
import TestSupport
import WMSPipeline

/// Broker faults (issue 11): the worker rides through them, commits nothing
/// early, and loses and doubles nothing.
@Suite struct PipelineBrokerFaultTests {
    /// An offset commit the broker refuses for a while (OffsetCommit answered with
    /// REQUEST_TIMED_OUT) is retried by itself, promptly: the batch's effects are
    /// durable, so it is not run again (which would only find duplicates, behind
    /// a backoff that grows with each failure).
    @Test func aFailedOffsetCommitIsRetriedWithoutRunningTheBatchAgain() async throws {
        let fixture = try await PipelineFixture.create()
        let sku = fixture.sku("S")
        let events = (1...3).map { WMSEvents.receiving("\(fixture.id)-\($0)", at: "FC1", [(sku, 1)]) }
        let outcome = try await blocking {
            let cluster = try KafkaMockCluster(brokers: 1, logger: PipelineFixture.logger)
            var f = fixture
            f.kafkaBrokers = cluster.bootstrapServers
            for topic in [f.topics[0], f.deadLetterTopic] { try cluster.createTopic(topic, partitions: 1) }
            try f.produce(events, partition: 0)
            // REQUEST_TIMED_OUT (7) for the next three OffsetCommit requests (ApiKey 8).
            cluster.pushRequestErrors(apiKey: 8, errors: [7, 7, 7])
            let started = ContinuousClock.now
            let report = try f.run(untilSeen: events.count, timeout: .seconds(30))
            return (report, ContinuousClock.now - started, try f.postgresLevels())
        }
        let (report, took, levels) = outcome
        #expect(report.appliedCount == 3)
        #expect(report.duplicates == 0, "the batch ran again")
        #expect(levels["\(sku)@FC1"]?.first == 3)
        #expect(took < .seconds(15), "the commit was not retried promptly: \(took)")
        try await fixture.schema.drop()
    }
}
