import Foundation
import Kafka
import Redis
import WMSPipeline

/// The settings of section 7 of the contract, read from the environment. Every
/// missing or malformed value stops the program before it connects, naming the
/// variable.
struct Settings: Sendable {
    static let defaultTopics = [
        "wms.receiving", "wms.picking", "wms.shipping", "wms.cycle-counts", "wms.damage", "wms.transfers", "inventory.orders",
    ]

    var kafkaBrokers: String
    var groupID: String
    var topics: [String]
    var redis: RedisURL
    var displayCache: RedisURL
    var postgresURL: String
    var alertsTopic: String
    var allocationsTopic: String
    var deadLetterTopic: String
    var backorderPolicy: BackorderPolicy
    /// librdkafka properties passed through as they are (SASL, TLS, tuning), to
    /// every client; `consumerProperties` to the consumer only (librdkafka warns
    /// about consumer properties given to a producer).
    var kafkaProperties: [String: String]
    var consumerProperties: [String: String]

    struct Invalid: Error, CustomStringConvertible {
        let name: String
        let problem: String
        var description: String { "\(name): \(problem)" }
    }

    init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func required(_ name: String) throws -> String { try Self.required(name, environment) }
        kafkaBrokers = try required("WMS_KAFKA_BROKERS")
        groupID = environment["WMS_KAFKA_GROUP_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? "wms-inventory-worker"
        topics = environment["WMS_TOPICS"].map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } ?? Self.defaultTopics
        guard !topics.isEmpty else { throw Invalid(name: "WMS_TOPICS", problem: "names no topic") }
        func redisURL(_ name: String, _ text: String) throws -> RedisURL {
            do {
                return try RedisURL(text)
            } catch {
                throw Invalid(name: name, problem: "\(error)")
            }
        }
        redis = try redisURL("WMS_REDIS_URL", try required("WMS_REDIS_URL"))
        displayCache = try environment["WMS_DISPLAY_CACHE_URL"].flatMap { $0.isEmpty ? nil : $0 }
            .map { try redisURL("WMS_DISPLAY_CACHE_URL", $0) } ?? redis
        postgresURL = try required("WMS_POSTGRES_URL")
        func topic(_ name: String, default value: String) throws -> String {
            let topic = environment[name].flatMap { $0.isEmpty ? nil : $0 } ?? value
            guard topic.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }), topic.count <= 249 else {
                throw Invalid(name: name, problem: "'\(topic)' is not a valid Kafka topic name")
            }
            return topic
        }
        alertsTopic = try topic("WMS_ALERTS_TOPIC", default: "inventory.alerts")
        allocationsTopic = try topic("WMS_ALLOCATIONS_TOPIC", default: "wms.allocations")
        deadLetterTopic = try topic("WMS_DLQ_TOPIC", default: "wms.events.dlq")
        let policy = environment["WMS_BACKORDER_POLICY"].flatMap { $0.isEmpty ? nil : $0 } ?? BackorderPolicy.strictFIFO.rawValue
        guard let backorderPolicy = BackorderPolicy(rawValue: policy) else {
            throw Invalid(name: "WMS_BACKORDER_POLICY", problem: "'\(policy)' is not one of \(BackorderPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.backorderPolicy = backorderPolicy
        kafkaProperties = try Self.parseProperties(environment["WMS_KAFKA_PROPERTIES"] ?? "", name: "WMS_KAFKA_PROPERTIES")
        consumerProperties = try Self.parseProperties(environment["WMS_KAFKA_CONSUMER_PROPERTIES"] ?? "", name: "WMS_KAFKA_CONSUMER_PROPERTIES")
    }

    /// `name=value` pairs separated by `;` or newlines.
    static func parseProperties(_ text: String, name: String) throws -> [String: String] {
        var properties: [String: String] = [:]
        for entry in text.split(whereSeparator: { $0 == ";" || $0.isNewline }) {
            let pair = entry.trimmingCharacters(in: .whitespaces)
            guard !pair.isEmpty else { continue }
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                // Show the name part only: the value could be a secret.
                throw Invalid(name: name, problem: "'\(pair.prefix { $0 != "=" })' is not of the form name=value")
            }
            properties[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        return properties
    }

    /// `migrate` needs PostgreSQL only.
    static func postgresURL(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try required("WMS_POSTGRES_URL", environment)
    }

    private static func required(_ name: String, _ environment: [String: String]) throws -> String {
        guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
            throw Invalid(name: name, problem: "is not set")
        }
        return value
    }

    var pipeline: PipelineSettings {
        var settings = PipelineSettings(topics: topics)
        settings.alertsTopic = alertsTopic
        settings.allocationsTopic = allocationsTopic
        settings.deadLetterTopic = deadLetterTopic
        settings.backorderPolicy = backorderPolicy
        return settings
    }

    var producerConfig: KafkaConfig {
        KafkaConfig(bootstrapServers: kafkaBrokers, properties: kafkaProperties.merging(
            ["client.id": "wms-worker"], uniquingKeysWith: { passedThrough, _ in passedThrough }))
    }

    var consumerConfig: KafkaConfig {
        KafkaConfig(bootstrapServers: kafkaBrokers, properties: kafkaProperties.merging(consumerProperties) { $1 }.merging(
            ["group.id": groupID, "client.id": "wms-worker"], uniquingKeysWith: { passedThrough, _ in passedThrough }))
    }
}
