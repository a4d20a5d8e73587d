import ArgumentParser
import Logging

@main
struct WMSWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wms-worker",
        abstract: "Keeps inventory in Redis and PostgreSQL in step with warehouse (WMS) events from Kafka.",
        subcommands: [Migrate.self, Check.self, Run.self, Replay.self])
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level: unknown level '\(logLevel)' (expected trace, debug, info, notice, warning, error or critical)")
        }
    }

    func bootstrapLogging() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "wms-worker")
    }
}
