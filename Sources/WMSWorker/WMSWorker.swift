import ArgumentParser
import Foundation
import Logging
import WMSOperations
import WMSService

@main
struct WMSWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wms-worker",
        abstract: "Keeps inventory in Redis and PostgreSQL in step with warehouse (WMS) events from Kafka.",
        discussion: """
            Every setting comes from the environment (WMS_…), a settings file (WMS_CONFIG_FILE or \
            --config-file: NAME=value lines), and flags, each overriding the one before. \
            `wms-worker config` shows what is in effect.
            """,
        subcommands: [Run.self, Replay.self, Reconcile.self, Migrate.self, Check.self, Config.self])

    /// ArgumentParser's `main`, ending with `_exit` instead of `exit`. When a
    /// command returns or throws, its connections are closed and its messages
    /// flushed, but library threads stay parked (NIO's event loops, librdkafka's,
    /// the dedicated I/O threads); `exit`'s teardown (static destructors,
    /// `atexit` handlers) races them, and crashed a worker once at exit after
    /// SIGTERM (a lock already destroyed).
    static func main() async {
        let code: Int32
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
            code = ExitCode.success.rawValue
        } catch {
            code = exitCode(for: error).rawValue
            let message = fullMessage(for: error)
            if !message.isEmpty {
                FileHandle(fileDescriptor: code == ExitCode.success.rawValue ? STDOUT_FILENO : STDERR_FILENO)
                    .write(Data((message + "\n").utf8))
            }
        }
        fflush(nil)
        _exit(code)
    }
}

/// The settings as flags, for every subcommand: each overrides the settings file
/// and the environment. (Passwords in flags show in `ps`: prefer the file or the
/// environment for URLs with passwords.)
struct SettingsOptions: ParsableArguments {
    @Option(name: .customLong("config-file"), help: .init(SettingDefinition.configFile.help, valueName: "path")) var configFile: String?
    @Option(name: .customLong("kafka-brokers"), help: .init(SettingDefinition.kafkaBrokers.help, valueName: "hosts")) var kafkaBrokers: String?
    @Option(name: .customLong("kafka-group-id"), help: .init(SettingDefinition.groupID.help, valueName: "id")) var groupID: String?
    @Option(name: .customLong("topics"), help: .init(SettingDefinition.topics.help, valueName: "names")) var topics: String?
    @Option(name: .customLong("kafka-property"), help: .init("A librdkafka property for every client, name=value (repeatable).", valueName: "name=value"))
    var kafkaProperty: [String] = []
    @Option(name: .customLong("kafka-consumer-properties"), help: .init(SettingDefinition.consumerProperties.help, valueName: "list"))
    var consumerProperties: String?
    @Option(name: .customLong("redis-url"), help: .init(SettingDefinition.redisURL.help, valueName: "url")) var redisURL: String?
    @Option(name: .customLong("display-cache-url"), help: .init(SettingDefinition.displayCacheURL.help, valueName: "url")) var displayCacheURL: String?
    @Option(name: .customLong("postgres-url"), help: .init(SettingDefinition.postgresURL.help, valueName: "url")) var postgresURL: String?
    @Option(name: .customLong("alerts-topic"), help: .init(SettingDefinition.alertsTopic.help, valueName: "topic")) var alertsTopic: String?
    @Option(name: .customLong("allocations-topic"), help: .init(SettingDefinition.allocationsTopic.help, valueName: "topic")) var allocationsTopic: String?
    @Option(name: .customLong("dlq-topic"), help: .init(SettingDefinition.deadLetterTopic.help, valueName: "topic")) var deadLetterTopic: String?
    @Option(name: .customLong("http-addr"), help: .init(SettingDefinition.httpAddress.help, valueName: "host:port")) var httpAddress: String?
    @Option(name: .customLong("backorder-policy"), help: .init(SettingDefinition.backorderPolicy.help, valueName: "policy")) var backorderPolicy: String?
    @Option(name: .customLong("variance-units"), help: .init(SettingDefinition.varianceUnits.help, valueName: "n")) var varianceUnits: String?
    @Option(name: .customLong("variance-fraction"), help: .init(SettingDefinition.varianceFraction.help, valueName: "f")) var varianceFraction: String?
    @Option(name: .customLong("log-format"), help: .init(SettingDefinition.logFormat.help, valueName: "format")) var logFormat: String?
    @Option(name: .customLong("log-level"), help: .init(SettingDefinition.logLevel.help, valueName: "level")) var logLevel: String?
    @Option(name: .customLong("redis-grace"), help: .init(SettingDefinition.redisGrace.help, valueName: "seconds")) var redisGrace: String?
    @Option(name: .customLong("batch-max-messages"), help: .init(SettingDefinition.batchMaxMessages.help, valueName: "n")) var batchMaxMessages: String?
    @Option(name: .customLong("shutdown-timeout"), help: .init(SettingDefinition.shutdownTimeout.help, valueName: "seconds")) var shutdownTimeout: String?

    var layers: SettingLayers {
        let given: [(SettingDefinition, String?)] = [
            (.configFile, configFile), (.kafkaBrokers, kafkaBrokers), (.groupID, groupID), (.topics, topics),
            (.consumerProperties, consumerProperties), (.redisURL, redisURL), (.displayCacheURL, displayCacheURL), (.postgresURL, postgresURL),
            (.alertsTopic, alertsTopic), (.allocationsTopic, allocationsTopic), (.deadLetterTopic, deadLetterTopic),
            (.httpAddress, httpAddress), (.backorderPolicy, backorderPolicy), (.varianceUnits, varianceUnits),
            (.varianceFraction, varianceFraction), (.logFormat, logFormat), (.logLevel, logLevel), (.shutdownTimeout, shutdownTimeout),
            (.redisGrace, redisGrace), (.batchMaxMessages, batchMaxMessages),
        ]
        return SettingLayers(flags: Dictionary(uniqueKeysWithValues: given.compactMap { definition, value in value.map { (definition, $0) } }),
                             kafkaPropertyFlags: kafkaProperty)
    }

    /// Structured logs as the settings say, for a command that reads no other
    /// setting but PostgreSQL's; the process's one logging bootstrap.
    func bootstrapLogging() throws -> Logger {
        let (format, level) = try Settings.logging(layers)
        StructuredLogHandler.bootstrap(format: format, level: level)
        return Logger(label: "wms-worker")
    }

    /// Every setting the daemon needs, with logging bootstrapped and the consumer
    /// group on every line.
    func daemonSettings() throws -> (Settings, Logger) {
        let settings = try Settings(layers)
        StructuredLogHandler.bootstrap(format: settings.logFormat, level: settings.logLevel)
        var logger = Logger(label: "wms-worker")
        logger[metadataKey: "kafka.group"] = "\(settings.groupID)"
        return (settings, logger)
    }
}
