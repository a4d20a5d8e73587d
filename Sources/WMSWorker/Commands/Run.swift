import ArgumentParser
import BlockingIO
import Dispatch
import Foundation
import Kafka
import Logging
import Synchronization

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon until SIGTERM or SIGINT.",
        discussion: """
            Connects to Redis, PostgreSQL and Kafka (retrying with backoff until each answers), \
            joins the consumer group and follows its partitions. This is the foundation's \
            skeleton: applying events arrives with the event pipeline; until then no offset is \
            committed, so nothing is consumed for good.
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let logger = common.bootstrapLogging()
        let settings = try Settings()
        let stop = ShutdownSignal(logger: logger)
        let thread = DedicatedThread(name: "wms.pipeline")
        defer { thread.stop() }
        try await thread.run {
            try Self.follow(settings: settings, stop: stop, logger: logger)
        }
        logger.info("stopped")
    }

    /// Runs on the dedicated pipeline thread: every call in here blocks.
    static func follow(settings: Settings, stop: ShutdownSignal, logger: Logger) throws {
        let dependencies = Dependencies(settings: settings, logger: logger)
        var backoff = Backoff()
        var connected: (redis: String, postgres: String)?
        while connected == nil, !stop.requested {
            do {
                let (_, redis) = try dependencies.probeRedis()
                let (_, postgres) = try dependencies.probePostgres()
                connected = (redis, postgres)
            } catch {
                let delay = backoff.next()
                logger.warning("a store is not reachable, retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                stop.sleep(delay)
            }
        }
        guard let connected else { return }
        logger.info("connected to Redis", metadata: ["redis": "\(connected.redis)"])
        logger.info("connected to PostgreSQL", metadata: ["postgres": "\(connected.postgres)"])

        let consumer = try KafkaConsumer(config: settings.consumerConfig, logger: logger)
        try consumer.subscribe(settings.topics)
        logger.info("joining consumer group", metadata: [
            "kafka.brokers": "\(settings.kafkaBrokers)", "kafka.group": "\(settings.groupID)",
            "kafka.topics": "\(settings.topics.joined(separator: ","))",
        ])
        var seen = 0
        while !stop.requested {
            seen += try consumer.poll(maxMessages: 1000, timeout: .milliseconds(200)).count
            // The consumer logs each rebalance itself; nothing is in flight to settle here.
            _ = consumer.takeRebalanceEvents()
            if let error = consumer.takeLastError() {
                logger.warning("Kafka unreachable, librdkafka keeps retrying", metadata: ["kafka.error": "\(error)"])
            }
        }
        logger.info("leaving consumer group", metadata: ["messages_seen_not_committed": "\(seen)"])
        try consumer.close()
    }
}

/// Exponential backoff with jitter: 0.5 s doubling up to 30 s.
struct Backoff {
    private var attempt = 0

    mutating func next() -> Duration {
        defer { attempt += 1 }
        let base = min(30.0, 0.5 * pow(2.0, Double(min(attempt, 10))))
        return .milliseconds(Int(base * Double.random(in: 0.8...1.2) * 1000))
    }
}

/// SIGTERM or SIGINT asks the daemon to stop after the batch in hand; a second
/// signal exits at once.
/// (`@unchecked`: the dispatch sources are only kept alive, never touched after init.)
final class ShutdownSignal: @unchecked Sendable {
    private final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
    }

    private let flag = Flag()
    private let sources: [any DispatchSourceSignal]

    init(logger: Logger) {
        let flag = self.flag
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if flag.raised.exchange(true, ordering: .relaxed) {
                    logger.warning("second signal: exiting at once", metadata: ["signal": "\(number)"])
                    exit(1)
                }
                logger.info("signal received: finishing", metadata: ["signal": "\(number)"])
            }
            source.resume()
            return source
        }
    }

    var requested: Bool { flag.raised.load(ordering: .relaxed) }

    /// Sleeps for `duration`, waking early when a stop is requested.
    func sleep(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !requested, ContinuousClock.now < deadline {
            usleep(50_000)
        }
    }
}
