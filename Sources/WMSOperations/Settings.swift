import Configuration
import Foundation
import Kafka
import Logging
import Postgres
import Redis
import WMSDomain
import WMSPipeline

/// The worker's settings (section 7 of the contract), from three layers, each
/// overriding the one before: the environment, an optional settings file, flags.
/// Every missing or malformed value stops the program before it connects, with a
/// message naming the setting and where its value came from.
public struct Settings: Sendable {
    public static let defaultTopics = [
        "wms.receiving", "wms.picking", "wms.shipping", "wms.cycle-counts", "wms.damage", "wms.transfers", "inventory.orders",
    ]

    public var kafkaBrokers: String
    public var groupID: String
    public var topics: [String]
    public var redis: RedisURL
    public var displayCache: RedisURL
    public var postgresURL: String
    public var alertsTopic: String
    public var allocationsTopic: String
    public var deadLetterTopic: String
    public var httpAddress: HTTPAddress
    public var backorderPolicy: BackorderPolicy
    public var varianceThresholds: VarianceThresholds
    /// librdkafka properties passed through as they are (SASL, TLS, tuning), to
    /// every client; `consumerProperties` to the consumer only (librdkafka warns
    /// about consumer properties given to a producer).
    public var kafkaProperties: [String: String]
    public var consumerProperties: [String: String]
    public var logFormat: LogFormat
    public var logLevel: Logger.Level
    public var shutdownTimeout: Duration
    public var redisGrace: Duration
    public var batchMaxMessages: Int
    public var configFile: String?
    /// Where each setting's value came from, for `wms-worker config`.
    public var sources: [SettingDefinition: SettingSource]

    public enum LogFormat: String, Sendable, CaseIterable {
        case logfmt, json
    }

    public init(_ layers: SettingLayers) throws {
        let reader = try SettingsReader(layers)
        kafkaBrokers = try reader.required(.kafkaBrokers)
        groupID = reader.string(.groupID) ?? "wms-inventory-worker"
        topics = try reader.parsed(.topics) { text in
            let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw SettingProblem("names no topic") }
            try names.forEach(Self.checkTopicName)
            var seen = Set<String>()
            return names.filter { seen.insert($0).inserted }
        } ?? Self.defaultTopics
        redis = try reader.parsed(.redisURL, RedisURL.init) ?? { throw reader.missing(.redisURL) }()
        displayCache = try reader.parsed(.displayCacheURL, RedisURL.init) ?? redis
        postgresURL = try Self.postgresURL(reader)
        configFile = reader.string(.configFile)
        func topic(_ definition: SettingDefinition, _ defaultValue: String) throws -> String {
            try reader.parsed(definition) { try Self.checkTopicName($0); return $0 } ?? defaultValue
        }
        alertsTopic = try topic(.alertsTopic, "inventory.alerts")
        allocationsTopic = try topic(.allocationsTopic, "wms.allocations")
        deadLetterTopic = try topic(.deadLetterTopic, "wms.events.dlq")
        httpAddress = try reader.parsed(.httpAddress, HTTPAddress.init) ?? HTTPAddress(host: "0.0.0.0", port: 9400)
        backorderPolicy = try reader.parsed(.backorderPolicy) { try Self.oneOf($0, BackorderPolicy.allCases) } ?? .strictFIFO
        varianceThresholds = VarianceThresholds(
            absolute: try reader.parsed(.varianceUnits) { text in
                guard let units = Int64(text), units >= 0 else { throw SettingProblem("'\(text)' is not a whole number of units, 0 or more") }
                return units
            } ?? 10,
            fraction: try reader.parsed(.varianceFraction) { text in
                guard let fraction = Double(text), fraction >= 0, fraction.isFinite else { throw SettingProblem("'\(text)' is not a fraction, 0 or more (0.05 is 5%)") }
                return fraction
            } ?? 0.05)
        kafkaProperties = try reader.properties(.kafkaProperties)
        consumerProperties = try reader.properties(.consumerProperties)
        (logFormat, logLevel) = try Self.logging(reader)
        shutdownTimeout = try reader.parsed(.shutdownTimeout) { text in
            guard let seconds = Int(text), seconds > 0, seconds <= 3600 else { throw SettingProblem("'\(text)' is not a number of seconds from 1 to 3600") }
            return .seconds(seconds)
        } ?? .seconds(30)
        redisGrace = try reader.parsed(.redisGrace) { text in
            guard let seconds = Int(text), seconds > 0, seconds <= 86_400 else { throw SettingProblem("'\(text)' is not a number of seconds from 1 to 86400") }
            return .seconds(seconds)
        } ?? .seconds(300)
        batchMaxMessages = try reader.parsed(.batchMaxMessages) { text in
            guard let count = Int(text), count > 0, count <= 100_000 else { throw SettingProblem("'\(text)' is not a number from 1 to 100000") }
            return count
        } ?? 2000
        sources = reader.sources
    }

    /// `migrate` needs PostgreSQL only, and `config` nothing at all.
    public static func postgresURL(_ layers: SettingLayers) throws -> String {
        try postgresURL(SettingsReader(layers))
    }

    private static func postgresURL(_ reader: SettingsReader) throws -> String {
        try reader.parsed(.postgresURL) { try PostgresConnection.checkURL($0); return $0 } ?? { throw reader.missing(.postgresURL) }()
    }

    /// How to log, for every command (`migrate` included, which reads no other setting
    /// but PostgreSQL's).
    public static func logging(_ layers: SettingLayers) throws -> (format: LogFormat, level: Logger.Level) {
        try logging(SettingsReader(layers))
    }

    private static func logging(_ reader: SettingsReader) throws -> (format: LogFormat, level: Logger.Level) {
        (try reader.parsed(.logFormat) { try Self.oneOf($0, LogFormat.allCases) } ?? .logfmt,
         try reader.parsed(.logLevel) { try Self.oneOf($0, Logger.Level.allCases) } ?? .info)
    }

    /// A setting as `wms-worker config` shows it: secrets masked.
    public struct Effective: Sendable, Codable {
        public let name: String
        public let value: String
        public let source: SettingSource
    }

    /// Every setting's effective value, secrets masked (passwords in URLs, secret
    /// librdkafka properties).
    public var effective: [Effective] {
        func properties(_ properties: [String: String]) -> String {
            properties.sorted { $0.key < $1.key }.map { "\($0.key)=\(KafkaConfig.isSecret($0.key) ? "***" : $0.value)" }.joined(separator: ";")
        }
        let values: [SettingDefinition: String] = [
            .configFile: configFile ?? "", .kafkaBrokers: kafkaBrokers, .groupID: groupID, .topics: topics.joined(separator: ","),
            .kafkaProperties: properties(kafkaProperties), .consumerProperties: properties(consumerProperties),
            .redisURL: redis.description, .displayCacheURL: displayCache.description, .postgresURL: PostgresConnection.redact(postgresURL),
            .alertsTopic: alertsTopic, .allocationsTopic: allocationsTopic, .deadLetterTopic: deadLetterTopic,
            .httpAddress: httpAddress.description, .backorderPolicy: backorderPolicy.rawValue,
            .varianceUnits: String(varianceThresholds.absolute), .varianceFraction: String(varianceThresholds.fraction),
            .logFormat: logFormat.rawValue, .logLevel: logLevel.rawValue, .shutdownTimeout: String(shutdownTimeout.components.seconds),
            .redisGrace: String(redisGrace.components.seconds), .batchMaxMessages: String(batchMaxMessages),
        ]
        return SettingDefinition.all.map { Effective(name: $0.environmentName, value: values[$0] ?? "", source: sources[$0] ?? .default) }
    }

    static func checkTopicName(_ topic: String) throws {
        guard !topic.isEmpty, topic.count <= 249, topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
            throw SettingProblem("'\(topic)' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
        }
    }

    static func oneOf<Value: RawRepresentable<String>>(_ text: String, _ cases: [Value]) throws -> Value {
        guard let value = Value(rawValue: text) else {
            throw SettingProblem("'\(text)' is not one of \(cases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    public var pipeline: PipelineSettings {
        var settings = PipelineSettings(topics: topics)
        settings.alertsTopic = alertsTopic
        settings.allocationsTopic = allocationsTopic
        settings.deadLetterTopic = deadLetterTopic
        settings.backorderPolicy = backorderPolicy
        settings.varianceThresholds = varianceThresholds
        settings.redisGrace = redisGrace
        settings.maxBatchSize = batchMaxMessages
        return settings
    }

    public var producerConfig: KafkaConfig {
        KafkaConfig(bootstrapServers: kafkaBrokers, properties: kafkaProperties.merging(
            ["client.id": "wms-worker"], uniquingKeysWith: { passedThrough, _ in passedThrough }))
    }

    public var consumerConfig: KafkaConfig {
        KafkaConfig(bootstrapServers: kafkaBrokers, properties: kafkaProperties.merging(consumerProperties) { $1 }.merging(
            ["group.id": groupID, "client.id": "wms-worker"], uniquingKeysWith: { passedThrough, _ in passedThrough }))
    }
}

/// Interpolated anywhere (a log line, a library's debug output), settings show
/// masked, as `wms-worker config` does.
extension Settings: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { effective.map { "\($0.name)=\($0.value)" }.joined(separator: " ") }
    public var debugDescription: String { description }
}

/// Where `/healthz`, `/readyz` and `/metrics` listen.
public struct HTTPAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw SettingProblem("'\(text)' is not host:port (e.g. 0.0.0.0:9400)")
        }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !host.isEmpty else { throw SettingProblem("'\(text)' names no host (0.0.0.0 listens on every interface)") }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What a setting's value is wrong about; `SettingsReader` adds which setting and source.
struct SettingProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
