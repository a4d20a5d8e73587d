/// One setting of the worker, under the one name an operator uses everywhere: the
/// environment variable and a line of the settings file (`WMS_KAFKA_BROKERS`), the
/// flag (`--kafka-brokers`). The configuration key (`wms.kafka.brokers`) is what
/// swift-configuration derives both from.
public struct SettingDefinition: Sendable, Hashable, Comparable {
    /// Dot-separated, under `wms.`: `kafka.group-id` is `WMS_KAFKA_GROUP_ID` and `--kafka-group-id`.
    public let key: String
    public let isSecret: Bool
    public let defaultDescription: String?
    public let help: String

    init(_ key: String, secret: Bool = false, default defaultDescription: String? = nil, help: String) {
        self.key = key
        self.isSecret = secret
        self.defaultDescription = defaultDescription
        self.help = help
    }

    public var configurationKey: String { "wms." + key }
    public var environmentName: String {
        "WMS_" + key.uppercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }
    /// Derived from the key, but for the librdkafka properties, given one per flag.
    public var flag: String { self == .kafkaProperties ? "--kafka-property" : "--" + key.replacingDots() }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.key < rhs.key }
}

extension String {
    fileprivate func replacingDots() -> String { String(map { $0 == "." ? "-" : $0 }) }
}

extension SettingDefinition {
    public static let configFile = SettingDefinition(
        "config-file", help: "A settings file: NAME=value lines with the names of the environment variables; overrides the environment.")
    public static let kafkaBrokers = SettingDefinition("kafka.brokers", help: "Kafka bootstrap servers, host:port[,host:port…].")
    public static let groupID = SettingDefinition(
        "kafka.group-id", default: "wms-inventory-worker", help: "The consumer group every worker of the deployment shares.")
    public static let topics = SettingDefinition(
        "topics", default: Settings.defaultTopics.joined(separator: ","), help: "The topics to consume, comma-separated.")
    public static let kafkaProperties = SettingDefinition(
        "kafka.properties", secret: true,
        help: "librdkafka properties for every client, name=value;name=value (SASL, TLS, tuning). Values of secret-looking names are masked.")
    public static let consumerProperties = SettingDefinition(
        "kafka.consumer-properties", secret: true, help: "librdkafka properties for the consumer only, name=value;name=value.")
    public static let redisURL = SettingDefinition(
        "redis.url", secret: true, help: "The hot store: redis://[[user]:password@]host[:port][/db].")
    public static let displayCacheURL = SettingDefinition(
        "display-cache.url", secret: true, default: "WMS_REDIS_URL", help: "Where the display-cache keys live, if not in the hot store.")
    public static let postgresURL = SettingDefinition(
        "postgres.url", secret: true, help: "PostgreSQL connection URI (postgresql://user:password@host:port/db?…).")
    public static let alertsTopic = SettingDefinition("alerts.topic", default: "inventory.alerts", help: "Where variance and negative-stock alerts go.")
    public static let allocationsTopic = SettingDefinition(
        "allocations.topic", default: "wms.allocations", help: "Where ALLOCATION and ALLOCATION_CANCELLED go.")
    public static let deadLetterTopic = SettingDefinition("dlq.topic", default: "wms.events.dlq", help: "Where bad messages go, with their original bytes.")
    public static let httpAddress = SettingDefinition(
        "http.addr", default: "0.0.0.0:9400", help: "host:port of /healthz, /readyz and /metrics; port 0 picks a free one.")
    public static let backorderPolicy = SettingDefinition(
        "backorder.policy", default: "strict-fifo", help: "How waiting order lines are filled: strict-fifo or fill-what-fits.")
    public static let varianceUnits = SettingDefinition(
        "variance.units", default: "10", help: "A cycle count alerts when |variance| is above this many units.")
    public static let varianceFraction = SettingDefinition(
        "variance.fraction", default: "0.05", help: "… or when |variance| / expectedCount is above this fraction.")
    public static let redisGrace = SettingDefinition(
        "redis.grace", default: "300",
        help: "Seconds Redis keeps an event's claims, marks, order lines and pick tallies after its PostgreSQL commit (never less before it).")
    public static let batchMaxMessages = SettingDefinition(
        "batch.max-messages", default: "2000",
        help: "Most messages in one batch; a batch takes what is ready, so a quiet stream gets small ones. 1: a commit per message.")
    public static let logFormat = SettingDefinition("log.format", default: "logfmt", help: "Log lines as logfmt or json.")
    public static let logLevel = SettingDefinition(
        "log.level", default: "info", help: "trace, debug, info, notice, warning, error or critical.")
    public static let shutdownTimeout = SettingDefinition(
        "shutdown.timeout", default: "30", help: "Seconds a graceful shutdown may take before the worker exits anyway.")

    /// Every setting, in the order `wms-worker config` prints them.
    public static let all: [SettingDefinition] = [
        configFile, kafkaBrokers, groupID, topics, kafkaProperties, consumerProperties, redisURL, displayCacheURL, postgresURL,
        alertsTopic, allocationsTopic, deadLetterTopic, httpAddress, backorderPolicy, varianceUnits, varianceFraction, redisGrace,
        batchMaxMessages, logFormat, logLevel, shutdownTimeout,
    ]
}
