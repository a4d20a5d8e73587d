import ArgumentParser
import Foundation
import Kafka
import Logging

/// A local Kafka broker for development and tests: librdkafka's mock cluster in a
/// process of its own, with the contract's topics created up front.
@main
struct DevBroker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wms-dev-broker",
        abstract: "Run librdkafka's mock Kafka cluster on loopback until SIGTERM or SIGINT.",
        discussion: "Prints the bootstrap address on standard output. Topics not created up front are created on first use.")

    @Option(help: "Comma-separated topics to create.")
    var topics = "wms.receiving,wms.picking,wms.shipping,wms.cycle-counts,wms.damage,wms.transfers,inventory.orders,wms.allocations,inventory.alerts,wms.events.dlq"

    @Option(help: "Partitions per topic.")
    var partitions = 4

    @Option(help: "Number of brokers in the cluster.")
    var brokers = 1

    @Option(help: "Also write the bootstrap address to this file (removed on exit).")
    var bootstrapFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1, got \(partitions)") }
        guard brokers >= 1 else { throw ValidationError("--brokers must be at least 1, got \(brokers)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
    }

    func run() throws {
        // Block the signals before librdkafka starts its threads (they inherit the
        // mask), so that only sigwait below receives them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            return handler
        }
        let logger = Logger(label: "wms-dev-broker")
        let cluster = try KafkaMockCluster(brokers: brokers, logger: logger)
        let topicNames = topics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for topic in topicNames {
            try cluster.createTopic(topic, partitions: partitions)
        }
        let bootstrap = cluster.bootstrapServers
        Thread.detachNewThread { Self.keepNagleOffOnEverySocket() }
        if let bootstrapFile {
            // Written whole, then renamed: a reader never sees half an address.
            try Data((bootstrap + "\n").utf8).write(to: URL(fileURLWithPath: bootstrapFile), options: .atomic)
        }
        FileHandle.standardOutput.write(Data((bootstrap + "\n").utf8))
        logger.info("dev broker up", metadata: [
            "bootstrap": "\(bootstrap)", "topics": "\(topicNames.count)", "partitions": "\(partitions)",
        ])

        var received: Int32 = 0
        sigwait(&signals, &received)
        logger.info("dev broker stopping", metadata: ["signal": "\(received)"])
        if let bootstrapFile { try? FileManager.default.removeItem(atPath: bootstrapFile) }
        withExtendedLifetime(cluster) {}
    }

    /// The mock cluster leaves Nagle's algorithm on for the connections it
    /// accepts, so a small response written behind another waits for the client's
    /// delayed ACK: about 40 ms per produce round trip, where a real broker
    /// (which sets TCP_NODELAY) answers at once. Every TCP socket of this process
    /// gets TCP_NODELAY within a few milliseconds of being opened.
    static func keepNagleOffOnEverySocket() {
        var done: Set<String> = []
        while true {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            var open: Set<String> = []
            for entry in entries {
                guard let fd = Int32(entry),
                      let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                      target.hasPrefix("socket:") else { continue }
                let identity = "\(fd) \(target)"
                open.insert(identity)
                guard !done.contains(identity) else { continue }
                var on: Int32 = 1
                // Fails harmlessly for a socket that is not TCP.
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
                done.insert(identity)
            }
            done.formIntersection(open)
            usleep(5_000)
        }
    }
}
