import Foundation
import Kafka
import Logging
import TestSupport

/// A log handler that keeps what it is given, to check what reached swift-log.
final class CapturedLogs: LogHandler, @unchecked Sendable {
    struct Entry { var level: Logger.Level; var message: String; var source: String }
    private let lock = NSLock()
    private var _entries: [Entry] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var entries: [Entry] { lock.withLock { _entries } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.withLock { _entries.append(Entry(level: event.level, message: "\(event.message)", source: event.source)) }
    }
}

enum KafkaFixtures {
    static let logger = Logger(label: "wms.test.kafka")

    static func consumerConfig(group: String, brokers: String = TestEnvironment.kafkaBrokers) -> KafkaConfig {
        KafkaConfig(bootstrapServers: brokers, properties: [
            "group.id": group,
            // Short session and heartbeats: rebalances in tests take seconds, not tens of them.
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "500",
        ])
    }

    static func producer(brokers: String = TestEnvironment.kafkaBrokers, _ extra: [String: String] = [:]) throws -> KafkaProducer {
        try KafkaProducer(config: KafkaConfig(bootstrapServers: brokers, properties: extra), logger: logger)
    }

    /// Produces `count` messages to one partition of a new topic (the broker creates
    /// it on first use) and returns the topic's name.
    static func topicWithMessages(_ count: Int, partition: Int32 = 0, prefix: String = "test") throws -> String {
        let topic = TestEnvironment.uniqueName(prefix)
        let producer = try producer()
        try producer.deliver((0..<count).map {
            KafkaOutboundMessage(topic: topic, partition: partition, key: Array("k\($0)".utf8), value: Array("v\($0)".utf8))
        })
        return topic
    }
}

extension KafkaConsumer {
    /// Polls until `count` messages have come or `timeout` has passed.
    func poll(count: Int, timeout: Duration = .seconds(30)) throws -> [KafkaMessage] {
        var messages: [KafkaMessage] = []
        let deadline = ContinuousClock.now + timeout
        while messages.count < count, ContinuousClock.now < deadline {
            messages += try poll(maxMessages: count - messages.count, timeout: .milliseconds(200))
        }
        return messages
    }

    /// Polls until `condition` holds or `timeout` has passed; returns whether it held.
    func poll(until condition: (KafkaConsumer) -> Bool, timeout: Duration = .seconds(30)) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition(self), ContinuousClock.now < deadline {
            _ = try poll(maxMessages: 100, timeout: .milliseconds(100))
        }
        return condition(self)
    }
}
