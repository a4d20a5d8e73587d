import ArgumentParser
import BlockingIO
import Foundation
import Kafka
import WMSOperations

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to Kafka, Redis and PostgreSQL once, report each, exit non-zero if one fails.")

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let (settings, logger) = try settings.daemonSettings()
        let probes = StoreProbes(settings: settings)
        let thread = DedicatedThread(name: "wms.check")
        defer { thread.stop() }
        let lines = try await thread.run { () -> [(String, Result<String, any Error>)] in
            [
                ("redis", Result { try probes.probeRedis().1 }),
                ("postgres", Result { try probes.probePostgres().1 }),
                ("kafka", Result { try probes.probeKafka(try KafkaProducer(config: settings.producerConfig, logger: logger)) }),
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
