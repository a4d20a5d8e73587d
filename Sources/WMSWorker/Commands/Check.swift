import ArgumentParser
import BlockingIO
import Foundation
import Kafka

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to Kafka, Redis and PostgreSQL once, report each, exit non-zero if one fails.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let logger = common.bootstrapLogging()
        let dependencies = Dependencies(settings: try Settings(), logger: logger)
        let thread = DedicatedThread(name: "wms.check")
        defer { thread.stop() }
        let lines = try await thread.run { () -> [(String, Result<String, any Error>)] in
            [
                ("redis", Result { try dependencies.probeRedis().1 }),
                ("postgres", Result { try dependencies.probePostgres().1 }),
                ("kafka", Result {
                    try dependencies.probeKafka(try KafkaProducer(config: dependencies.settings.producerConfig, logger: logger))
                }),
            ]
        }
        for (name, result) in lines {
            switch result {
            case .success(let detail): print("\(name.padding(toLength: 9, withPad: " ", startingAt: 0)) ok      \(detail)")
            case .failure(let error): print("\(name.padding(toLength: 9, withPad: " ", startingAt: 0)) FAILED  \(error)")
            }
        }
        if lines.contains(where: { if case .failure = $0.1 { true } else { false } }) {
            throw ExitCode(1)
        }
    }
}
