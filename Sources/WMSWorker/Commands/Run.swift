import ArgumentParser
import BlockingIO
import Dispatch
import Foundation
import Kafka
import Logging
import Postgres
import Redis
import Synchronization
import WMSPipeline

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon until SIGTERM or SIGINT.",
        discussion: """
            Connects to Redis, PostgreSQL and Kafka (retrying with backoff until each answers), \
            joins the consumer group and applies every event of its partitions. On SIGTERM or \
            SIGINT it finishes and commits the batch in hand, leaves the group and exits 0; a \
            second signal exits at once.
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let logger = common.bootstrapLogging()
        try await Self.runDaemon(settings: try Settings(), stop: ShutdownSignal(logger: logger), logger: logger)
    }

    /// The daemon: `run`, and `replay` once it has moved the offsets.
    static func runDaemon(settings: Settings, stop: ShutdownSignal, logger: Logger) async throws {
        let thread = DedicatedThread(name: "wms.pipeline")
        defer { thread.stop() }
        try await thread.run {
            try Self.runPipeline(settings: settings, stop: stop, logger: logger)
        }
        logger.info("stopped")
    }

    /// Runs on the dedicated pipeline thread: every call in here blocks.
    static func runPipeline(settings: Settings, stop: ShutdownSignal, logger: Logger) throws {
        let dependencies = Dependencies(settings: settings, logger: logger)
        var backoff = Backoff(maximum: .seconds(30))
        var stores: (hot: RedisConnection, postgres: PostgresConnection)?
        while stores == nil, !stop.requested {
            do {
                let (hot, redisDetail) = try dependencies.probeRedis()
                let (postgres, postgresDetail) = try dependencies.probePostgres()
                logger.info("connected to Redis", metadata: ["redis": "\(redisDetail)"])
                logger.info("connected to PostgreSQL", metadata: ["postgres": "\(postgresDetail)"])
                stores = (hot, postgres)
            } catch where Pipeline.isRetriable(error) {
                let delay = backoff.next()
                logger.warning("a store is not reachable, retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                stop.sleep(delay)
            }
        }
        guard let stores else { return }
        // The display cache gets a connection of its own even on the same server: it
        // belongs to the product-page layer and may move elsewhere.
        let connections = Pipeline.Connections(
            consumer: try KafkaConsumer(config: settings.consumerConfig, logger: logger),
            producer: try KafkaProducer(config: settings.producerConfig, logger: logger),
            hot: stores.hot, displayCache: try RedisConnection(url: settings.displayCache), postgres: stores.postgres)
        logger.info("joining consumer group", metadata: [
            "kafka.brokers": "\(settings.kafkaBrokers)", "kafka.group": "\(settings.groupID)",
            "kafka.topics": "\(settings.topics.joined(separator: ","))",
        ])
        let pipeline = Pipeline(settings: settings.pipeline, connections: connections, logger: logger)
        try pipeline.run(shouldStop: { stop.requested }, sleep: stop.sleep)
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
                logger.info("signal received: finishing the batch in hand", metadata: ["signal": "\(number)"])
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
            usleep(20_000)
        }
    }
}
