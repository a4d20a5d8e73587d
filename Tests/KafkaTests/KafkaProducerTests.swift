import Foundation
import Kafka
import Logging
import Testing
import TestSupport

@Suite struct KafkaProducerTests {
    @Test func headersAndBinaryPayloadsRoundTrip() async throws {
        let payload: [UInt8] = [0, 0xFF, 0, 10] + Array("ünïcode ✓".utf8)
        let read = try await blocking {
            let topic = TestEnvironment.uniqueName("headers")
            let producer = try KafkaFixtures.producer()
            let delivered = try producer.deliver([KafkaOutboundMessage(
                topic: topic, partition: 2, key: nil, value: payload,
                headers: [KafkaHeader(name: "wms.error.code", string: "INVALID_JSON"), KafkaHeader(name: "empty", value: nil)])])
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: TestEnvironment.uniqueName("group")), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            let read = try consumer.poll(count: 1)
            try consumer.close()
            return (delivered, read)
        }
        #expect(read.0.first?.partition == 2)
        let message = try #require(read.1.first)
        #expect(message.value == payload)
        #expect(message.key == nil)
        #expect(message.header("wms.error.code") == Array("INVALID_JSON".utf8))
        #expect(message.headers.contains(KafkaHeader(name: "empty", value: nil)))
        #expect(message.timestampMs != nil)
    }

    @Test func brokerDownGivesRetriableFailuresAndRecoveryDelivers() async throws {
        let outcome = try await blocking {
            let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaFixtures.logger)
            try cluster.createTopic("outage", partitions: 1)
            let producer = try KafkaFixtures.producer(brokers: cluster.bootstrapServers, ["message.timeout.ms": "1500"])
            try producer.deliver([KafkaOutboundMessage(topic: "outage", value: Array("before".utf8))])
            try ChildProcesses.noneStarting { try cluster.setBroker(1, up: false) }
            let during = try producer.send([KafkaOutboundMessage(topic: "outage", value: Array("during".utf8))], timeout: .seconds(10))
            try ChildProcesses.noneStarting { try cluster.setBroker(1, up: true) }
            // As the pipeline does: send again until the broker takes it (reconnecting
            // can outlast one message timeout).
            var after: [KafkaDelivery] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while after.isEmpty, ContinuousClock.now < deadline {
                after = (try? producer.deliver([KafkaOutboundMessage(topic: "outage", value: Array("after".utf8))])) ?? []
            }
            return (during, after)
        }
        guard case .failure(let error) = outcome.0.first else {
            Issue.record("expected a failed delivery while the broker was down, got \(outcome.0)")
            return
        }
        #expect(error.isRetriable)
        #expect(!error.isFatal)
        #expect(outcome.1.count == 1)
    }

    /// A message the broker refuses as too large fails alone, with an error that
    /// says so, and the idempotent producer goes on: the dead-letter cut relies on
    /// both. (librdkafka refusing one above the producer's message.max.bytes is
    /// covered by the pipeline's tests; the dev broker has no size limit.)
    @Test func aMessageTheBrokerRefusesAsTooLargeFailsAloneAndTheProducerGoesOn() async throws {
        let outcome = try await blocking {
            let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaFixtures.logger)
            try cluster.createTopic("sizes", partitions: 1)
            let producer = try KafkaFixtures.producer(brokers: cluster.bootstrapServers)
            try producer.deliver([KafkaOutboundMessage(topic: "sizes", value: Array("first".utf8))])
            // Kafka's MESSAGE_TOO_LARGE (10), for the next Produce request (ApiKey 0).
            cluster.pushRequestErrors(apiKey: 0, errors: [10])
            let refused = try producer.send([KafkaOutboundMessage(topic: "sizes", value: Array("large".utf8))], timeout: .seconds(10))
            let after = try producer.send([KafkaOutboundMessage(topic: "sizes", value: Array("cut".utf8))], timeout: .seconds(10))
            return (refused, after)
        }
        guard case .failure(let error) = outcome.0.first else {
            Issue.record("expected the broker to refuse the message, got \(outcome.0)")
            return
        }
        #expect(error.isMessageTooLarge)
        #expect(!error.isFatal)
        #expect(outcome.1.count == 1)
        if case .failure(let error) = outcome.1.first { Issue.record("the producer did not go on: \(error)") }
    }

    @Test func unreachableBrokerIsReportedAsARetriableClientError() async throws {
        let error = try await blocking { () -> KafkaError? in
            // Nothing listens on port 9 of loopback.
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: "g", brokers: "127.0.0.1:9"), logger: KafkaFixtures.logger)
            try consumer.subscribe(["anything"])
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                _ = try consumer.poll(maxMessages: 1, timeout: .milliseconds(200))
                if let error = consumer.takeLastError() { return error }
            }
            return nil
        }
        #expect(error?.isRetriable == true)
        #expect(error?.isFatal == false)
    }

    @Test func librdkafkaLogsReachSwiftLog() async throws {
        let captured = CapturedLogs()
        let entries = try await blocking {
            let logger = Logger(label: "wms.test.logs") { _ in captured }
            let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: "no-such-host.invalid:9092"), logger: logger)
            _ = try producer.send([KafkaOutboundMessage(topic: "t", value: [1])], timeout: .seconds(2))
            return captured.entries
        }
        #expect(entries.contains { $0.source == "librdkafka" && $0.message.contains("no-such-host.invalid") })
    }

    @Test func badPropertyIsNamedAndSecretsAreMasked() async throws {
        let error = try await blocking { () -> KafkaError? in
            do {
                _ = try KafkaProducer(config: KafkaConfig(bootstrapServers: "x:1", properties: ["linger.ms": "soon"]), logger: KafkaFixtures.logger)
                return nil
            } catch {
                return error as? KafkaError
            }
        }
        #expect(error?.message.contains("linger.ms") == true)
        let config = KafkaConfig(bootstrapServers: "b:9092", properties: ["sasl.password": "hunter2", "sasl.username": "svc"])
        #expect(!config.description.contains("hunter2"))
        #expect(config.description.contains("sasl.password=***"))
        #expect(config.description.contains("sasl.username=svc"))
    }
}
