import Foundation
import Kafka
import Testing
import TestSupport

/// kcat (librdkafka's command-line client, as operators use it) and our wrappers
/// read each other's messages through the dev broker.
@Suite struct KcatInteropTests {
    static func kcat(_ arguments: [String], input: String? = nil) throws -> String {
        let finished = try ChildProcesses.run(["kcat", "-b", TestEnvironment.kafkaBrokers] + arguments, input: input.map { Data($0.utf8) },
                                              errorsApart: true)
        guard finished.status == 0 else { throw CocoaError(.executableLoad) }
        return finished.text
    }

    @Test func kcatProducesAndOurConsumerReads() async throws {
        let values = try await blocking {
            let topic = TestEnvironment.uniqueName("kcat-in")
            _ = try Self.kcat(["-P", "-t", topic, "-p", "0", "-K", ":"], input: "a:first\nb:second\n")
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: TestEnvironment.uniqueName("group")), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            let read = try consumer.poll(count: 2)
            try consumer.close()
            return read.map { "\(String(decoding: $0.key ?? [], as: UTF8.self))=\(String(decoding: $0.value, as: UTF8.self))" }
        }
        #expect(values == ["a=first", "b=second"])
    }

    @Test func ourProducerWritesAndKcatReadsWithAConsumerGroup() async throws {
        let output = try await blocking {
            let topic = TestEnvironment.uniqueName("kcat-out")
            try KafkaFixtures.producer().deliver([
                KafkaOutboundMessage(topic: topic, partition: 1, key: Array("k".utf8), value: Array("{\"eventId\":\"e-1\"}".utf8),
                                     headers: [KafkaHeader(name: "wms.error.code", string: "INVALID_FIELD")]),
            ])
            // -G joins a consumer group, as an operator reading a topic would; -e exits at the end.
            return try Self.kcat(["-G", TestEnvironment.uniqueName("kcat-group"), "-o", "beginning", "-e", "-q",
                                  "-f", "%k|%s|%h\\n", topic])
        }
        #expect(output == "k|{\"eventId\":\"e-1\"}|wms.error.code=INVALID_FIELD\n")
    }
}
