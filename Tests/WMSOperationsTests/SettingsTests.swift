import Foundation
import Logging
import Testing
import WMSOperations
import WMSPipeline

/// Section 7: settings from the environment, a settings file and flags, each
/// overriding the one before; every missing or malformed one named.
@Suite struct SettingsTests {
    static let required = [
        "WMS_KAFKA_BROKERS": "env-broker:9092",
        "WMS_REDIS_URL": "redis://:env-secret@127.0.0.1:6379/0",
        "WMS_POSTGRES_URL": "postgresql://wms:env-pg-secret@127.0.0.1:5432/wms",
    ]

    static func file(_ lines: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wms-settings-\(UUID().uuidString.prefix(8)).env").path
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func defaultsApplyWhenOnlyTheRequiredSettingsAreGiven() throws {
        let settings = try Settings(SettingLayers(environment: Self.required))
        #expect(settings.groupID == "wms-inventory-worker")
        #expect(settings.topics == Settings.defaultTopics)
        #expect(settings.displayCache == settings.redis)
        #expect(settings.alertsTopic == "inventory.alerts")
        #expect(settings.allocationsTopic == "wms.allocations")
        #expect(settings.deadLetterTopic == "wms.events.dlq")
        #expect(settings.httpAddress == HTTPAddress(host: "0.0.0.0", port: 9400))
        #expect(settings.backorderPolicy == .strictFIFO)
        #expect(settings.logFormat == .logfmt && settings.logLevel == .info)
        #expect(settings.shutdownTimeout == .seconds(30))
        #expect(settings.sources[.groupID] == .default)
        #expect(settings.sources[.kafkaBrokers] == .environment)
    }

    @Test func theFileOverridesTheEnvironmentAndFlagsOverrideBoth() throws {
        let path = try Self.file([
            "# a comment, and a blank line", "",
            "WMS_KAFKA_GROUP_ID=file-group",
            "WMS_ALERTS_TOPIC=file.alerts",
            "WMS_HTTP_ADDR=127.0.0.1:9500",
            "WMS_KAFKA_PROPERTIES=socket.timeout.ms=2000;sasl.username=file-user",
        ])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let environment = Self.required.merging([
            "WMS_CONFIG_FILE": path, "WMS_KAFKA_GROUP_ID": "env-group", "WMS_ALERTS_TOPIC": "env.alerts", "WMS_DLQ_TOPIC": "env.dlq",
            "WMS_KAFKA_PROPERTIES": "socket.timeout.ms=1000;sasl.password=env-kafka-secret;fetch.wait.max.ms=50",
        ]) { $1 }
        let settings = try Settings(SettingLayers(
            environment: environment, flags: [.alertsTopic: "flag.alerts", .logFormat: "json"],
            kafkaPropertyFlags: ["sasl.username=flag-user"]))
        #expect(settings.groupID == "file-group")          // file over environment
        #expect(settings.alertsTopic == "flag.alerts")     // flag over file and environment
        #expect(settings.deadLetterTopic == "env.dlq")     // environment alone
        #expect(settings.httpAddress == HTTPAddress(host: "127.0.0.1", port: 9500))
        #expect(settings.logFormat == .json)
        // librdkafka properties merge property by property.
        #expect(settings.kafkaProperties == [
            "socket.timeout.ms": "2000", "sasl.password": "env-kafka-secret", "fetch.wait.max.ms": "50", "sasl.username": "flag-user",
        ])
        #expect(settings.sources[.groupID] == .file)
        #expect(settings.sources[.alertsTopic] == .flag)
        #expect(settings.sources[.deadLetterTopic] == .environment)
        #expect(settings.sources[.kafkaProperties] == .flag)
        #expect(settings.sources[.logFormat] == .flag)
        #expect(settings.sources[.backorderPolicy] == .default)
        // The consumer gets the passed-through properties and the group.
        #expect(settings.consumerConfig.properties["group.id"] == "file-group")
        #expect(settings.consumerConfig.properties["sasl.username"] == "flag-user")
    }

    @Test func aFlagNamesTheFileToo() throws {
        let path = try Self.file(["WMS_KAFKA_GROUP_ID=from-flag-file"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let settings = try Settings(SettingLayers(environment: Self.required, flags: [.configFile: path]))
        #expect(settings.groupID == "from-flag-file")
        #expect(settings.configFile == path)
    }

    @Test func theEffectiveSettingsMaskEverySecret() throws {
        let path = try Self.file(["WMS_DISPLAY_CACHE_URL=redis://cache-user:file-cache-secret@cache:6379/2"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let settings = try Settings(SettingLayers(
            environment: Self.required.merging([
                "WMS_CONFIG_FILE": path,
                "WMS_KAFKA_PROPERTIES": "sasl.password=env-kafka-secret;ssl.key.password=env-key-secret;sasl.username=visible-user",
                "WMS_POSTGRES_URL": "postgresql://wms:env-pg-secret@127.0.0.1:5432/wms?sslpassword=ssl-secret&password=query-secret&sslmode=disable",
            ]) { $1 },
            flags: [.redisURL: "redis://:flag-secret@10.0.0.1:6380/1"]))
        let shown = settings.effective.map { "\($0.name)=\($0.value) (\($0.source.rawValue))" }.joined(separator: "\n")
        for secret in ["env-kafka-secret", "env-key-secret", "env-pg-secret", "query-secret", "ssl-secret", "flag-secret", "file-cache-secret", "env-secret"] {
            #expect(!shown.contains(secret), "\(secret) shown:\n\(shown)")
        }
        #expect(shown.contains("WMS_REDIS_URL=redis://:***@10.0.0.1:6380/1 (flag)"))
        #expect(shown.contains("WMS_DISPLAY_CACHE_URL=redis://cache-user:***@cache:6379/2 (file)"))
        #expect(shown.contains("sasl.username=visible-user"))
        #expect(shown.contains("WMS_POSTGRES_URL=postgresql://wms:***@127.0.0.1:5432/wms?sslpassword=***&password=***&sslmode=disable (environment)"))
    }

    /// Every missing or malformed setting: the message names it, says where the
    /// value came from and what is wrong, and never repeats a secret.
    @Test(arguments: [
        (["WMS_KAFKA_BROKERS": ""], [:], "setting WMS_KAFKA_BROKERS: is not set"),
        (["WMS_REDIS_URL": ""], [:], "setting WMS_REDIS_URL: is not set"),
        (["WMS_POSTGRES_URL": ""], [:], "setting WMS_POSTGRES_URL: is not set"),
        (["WMS_REDIS_URL": "http://:leak-1@h:1/0"], [:], "setting WMS_REDIS_URL: "),
        (["WMS_REDIS_URL": "redis://:leak-2@h:1/x"], [:], "setting WMS_REDIS_URL: "),
        ([:], ["display-cache.url": "redis://:leak-3@h:99999/0"], "setting WMS_DISPLAY_CACHE_URL (flag --display-cache-url): "),
        (["WMS_POSTGRES_URL": "mysql://u:leak-4@h/db"], [:], "setting WMS_POSTGRES_URL: "),
        (["WMS_POSTGRES_URL": "postgresql://u:leak-5@h/db?nosuchoption=1"], [:], "setting WMS_POSTGRES_URL: "),
        (["WMS_TOPICS": " , "], [:], "setting WMS_TOPICS: names no topic"),
        (["WMS_TOPICS": "wms.receiving,bad topic"], [:], "setting WMS_TOPICS: 'bad topic' is not a valid Kafka topic name"),
        (["WMS_ALERTS_TOPIC": "a/b"], [:], "setting WMS_ALERTS_TOPIC: 'a/b' is not a valid Kafka topic name"),
        ([:], ["allocations.topic": "x y"], "setting WMS_ALLOCATIONS_TOPIC (flag --allocations-topic): 'x y' is not a valid"),
        (["WMS_DLQ_TOPIC": String(repeating: "d", count: 250)], [:], "setting WMS_DLQ_TOPIC: "),
        (["WMS_HTTP_ADDR": "9400"], [:], "setting WMS_HTTP_ADDR: '9400' is not host:port"),
        (["WMS_HTTP_ADDR": ":9400"], [:], "setting WMS_HTTP_ADDR: ':9400' names no host"),
        (["WMS_HTTP_ADDR": "0.0.0.0:70000"], [:], "setting WMS_HTTP_ADDR: '0.0.0.0:70000' is not host:port"),
        (["WMS_BACKORDER_POLICY": "lifo"], [:], "setting WMS_BACKORDER_POLICY: 'lifo' is not one of strict-fifo, fill-what-fits"),
        (["WMS_VARIANCE_UNITS": "-1"], [:], "setting WMS_VARIANCE_UNITS: '-1' is not a whole number of units"),
        (["WMS_VARIANCE_FRACTION": "5%"], [:], "setting WMS_VARIANCE_FRACTION: '5%' is not a fraction"),
        (["WMS_LOG_FORMAT": "xml"], [:], "setting WMS_LOG_FORMAT: 'xml' is not one of logfmt, json"),
        ([:], ["log.level": "loud"], "setting WMS_LOG_LEVEL (flag --log-level): 'loud' is not one of trace, debug, info"),
        (["WMS_SHUTDOWN_TIMEOUT": "0"], [:], "setting WMS_SHUTDOWN_TIMEOUT: '0' is not a number of seconds from 1 to 3600"),
        (["WMS_KAFKA_PROPERTIES": "sasl.password"], [:], "setting WMS_KAFKA_PROPERTIES: entry 1 is not of the form name=value"),
        (["WMS_KAFKA_CONSUMER_PROPERTIES": "=leak-6"], [:], "setting WMS_KAFKA_CONSUMER_PROPERTIES: entry 1 is not of the form name=value"),
        (["WMS_KAFKA_PROPERTIES": "sasl.password=ab;leak-7"], [:], "setting WMS_KAFKA_PROPERTIES: entry 2 is not of the form name=value (write a ';' inside a value as '\\;')"),
        (["WMS_KAFKA_PROPERTIES": "enable.auto.commit=true"], [:], "setting WMS_KAFKA_PROPERTIES: enable.auto.commit cannot be passed through"),
        (["WMS_KAFKA_CONSUMER_PROPERTIES": "group.id=other"], [:], "setting WMS_KAFKA_CONSUMER_PROPERTIES: group.id cannot be passed through: set WMS_KAFKA_GROUP_ID instead"),
        (["WMS_KAFKA_PROPERTIES": "enable.idempotence=false"], [:], "setting WMS_KAFKA_PROPERTIES: enable.idempotence cannot be passed through"),
        (["WMS_POSTGRES_URL": "postgresql://wms:leak-8%zz@127.0.0.1/wms"], [:], "setting WMS_POSTGRES_URL: "),
        (["WMS_CONFIG_FILE": "/nonexistent/wms.env"], [:], "setting WMS_CONFIG_FILE: cannot read '/nonexistent/wms.env'"),
    ] as [([String: String], [String: String], String)])
    func aBadSettingIsNamed(environment: [String: String], flags: [String: String], message: String) throws {
        let flagValues = Dictionary(uniqueKeysWithValues: flags.map { key, value in (SettingDefinition.all.first { $0.key == key }!, value) })
        let error = #expect(throws: InvalidSetting.self) {
            try Settings(SettingLayers(environment: Self.required.merging(environment) { $1 }, flags: flagValues))
        }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.hasPrefix(message), "got: \(text)")
        #expect(!text.contains("leak-"), "a secret in the message: \(text)")
    }

    @Test func aSemicolonInsideAValueIsEscapedAndQuotesInTheFileAreNotPartOfTheValue() throws {
        let path = try Self.file([#"WMS_KAFKA_GROUP_ID="quoted-group""#, "WMS_ALERTS_TOPIC='single.quoted'"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let settings = try Settings(SettingLayers(environment: Self.required.merging([
            "WMS_CONFIG_FILE": path, "WMS_KAFKA_PROPERTIES": #"sasl.password=ab\;cd==;sasl.username=u"#,
            "WMS_TOPICS": "a.b,c.d,a.b",
        ]) { $1 }))
        #expect(settings.kafkaProperties == ["sasl.password": "ab;cd==", "sasl.username": "u"])
        #expect(settings.groupID == "quoted-group")
        #expect(settings.alertsTopic == "single.quoted")
        #expect(settings.topics == ["a.b", "c.d"])
    }

    @Test func aSettingsFileWithATypoOrAStrayLineIsRefused() throws {
        let typo = try Self.file(["WMS_KAFKA_GROUPID=x"])
        let stray = try Self.file(["WMS_KAFKA_GROUP_ID=x", "just words"])
        defer { [typo, stray].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        for (path, message) in [(typo, "\(typo):1: unknown setting 'WMS_KAFKA_GROUPID'"), (stray, "\(stray):2: expected NAME=value")] {
            let error = #expect(throws: InvalidSetting.self) {
                try Settings(SettingLayers(environment: Self.required.merging(["WMS_CONFIG_FILE": path]) { $1 }))
            }
            #expect(error.map { "\($0)" } == "setting WMS_CONFIG_FILE: \(message)")
        }
    }

    @Test func everySettingHasOneNameEverywhere() {
        #expect(SettingDefinition.kafkaBrokers.environmentName == "WMS_KAFKA_BROKERS")
        #expect(SettingDefinition.groupID.environmentName == "WMS_KAFKA_GROUP_ID")
        #expect(SettingDefinition.groupID.flag == "--kafka-group-id")
        #expect(SettingDefinition.displayCacheURL.environmentName == "WMS_DISPLAY_CACHE_URL")
        #expect(SettingDefinition.deadLetterTopic.environmentName == "WMS_DLQ_TOPIC")
        #expect(SettingDefinition.httpAddress.environmentName == "WMS_HTTP_ADDR")
        #expect(Set(SettingDefinition.all.map(\.environmentName)).count == SettingDefinition.all.count)
    }
}
