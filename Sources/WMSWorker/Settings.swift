import Foundation
import Kafka
import Redis

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
    var postgresURL: String
    /// librdkafka properties passed through as they are (SASL, TLS, tuning).
    var kafkaProperties: [String: String]

    struct Invalid: Error, CustomStringConvertible {
        let name: String
        let problem: String
        var description: String { "\(name): \(problem)" }
    }

    init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func required(_ name: String) throws -> String {
            guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
                throw Invalid(name: name, problem: "is not set")
            }
            return value
        }
        kafkaBrokers = try required("WMS_KAFKA_BROKERS")
        groupID = environment["WMS_KAFKA_GROUP_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? "wms-inventory-worker"
        topics = environment["WMS_TOPICS"].map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } ?? Self.defaultTopics
        guard !topics.isEmpty else { throw Invalid(name: "WMS_TOPICS", problem: "names no topic") }
        do {
            redis = try RedisURL(try required("WMS_REDIS_URL"))
        } catch let error as RedisError {
            throw Invalid(name: "WMS_REDIS_URL", problem: "\(error)")
        }
        postgresURL = try required("WMS_POSTGRES_URL")
        kafkaProperties = try Self.parseProperties(environment["WMS_KAFKA_PROPERTIES"] ?? "", name: "WMS_KAFKA_PROPERTIES")
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

    static func postgresURL(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard let value = environment["WMS_POSTGRES_URL"], !value.isEmpty else {
            throw Invalid(name: "WMS_POSTGRES_URL", problem: "is not set")
        }
        return value
    }

    var consumerConfig: KafkaConfig {
        KafkaConfig(bootstrapServers: kafkaBrokers, properties: kafkaProperties.merging(
            ["group.id": groupID, "client.id": "wms-worker"], uniquingKeysWith: { passedThrough, _ in passedThrough }))
    }
}
