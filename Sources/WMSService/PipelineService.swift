import BlockingIO
import Kafka
import Logging
import Postgres
import Redis
import ServiceLifecycle
import WMSOperations
import WMSPipeline
import WMSStore

/// The consume loop as a service: connects (retrying until every store answers),
/// then runs the pipeline on a thread of its own. On graceful shutdown it finishes
/// and commits the batch in hand, then leaves the group.
public struct PipelineService: Service {
    let settings: Settings
    let status: PipelineStatus
    /// Raised by the graceful shutdown, a cancellation, or the daemon's signal
    /// watchdog (a signal may come before the service group listens for it).
    let stop: StopFlag
    let faults: FaultPoints
    let logger: Logger

    public init(settings: Settings, status: PipelineStatus, stop: StopFlag = StopFlag(), faults: FaultPoints = FaultPoints(), logger: Logger) {
        self.settings = settings
        self.status = status
        self.stop = stop
        self.faults = faults
        self.logger = logger
    }

    public func run() async throws {
        let stop = self.stop
        let thread = DedicatedThread(name: "wms.pipeline")
        defer { thread.stop() }
        // A graceful shutdown lets the batch in hand finish; so does a cancellation
        // (another service of the group failed): a blocking loop cannot be
        // interrupted, only asked to stop.
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await thread.run { try runPipeline(stop: stop) }
            } onGracefulShutdown: {
                logger.info("shutting down: finishing the batch in hand")
                stop.raise()
            }
        } onCancel: {
            stop.raise()
        }
    }

    /// Rebuilds Redis from PostgreSQL after it lost its data (the repair is fenced:
    /// other workers may run meanwhile), on connections of its own.
    static func repairRedis(_ settings: Settings, ifLost: () -> Void) throws -> (state: RedisStateRecord, rebuilt: Bool) {
        let reconciler = Reconciler(hot: try RedisClient(url: settings.redis), postgres: try PostgresConnection(url: settings.postgresURL),
                                    displayCache: try RedisClient(url: settings.displayCache))
        let summary = try withoutActuallyEscaping(ifLost) { try reconciler.repair(ifLost: $0) }
        guard let state = summary.redisState else { throw RedisRepairUnderWay() }
        return (state, summary.rebuilt)
    }

    /// Runs on the dedicated pipeline thread: every call in here blocks.
    private func runPipeline(stop: StopFlag) throws {
        let probes = StoreProbes(settings: settings)
        var backoff = Backoff(maximum: .seconds(30))
        var stores: (hot: RedisClient, postgres: PostgresConnection)?
        while stores == nil, !stop.isRaised {
            do {
                let (hot, redisDetail) = try probes.probeRedis()
                let (postgres, postgresDetail) = try probes.probePostgres()
                logger.info("connected to Redis", metadata: ["redis": "\(redisDetail)"])
                logger.info("connected to PostgreSQL", metadata: ["postgres": "\(postgresDetail)"])
                stores = (hot, postgres)
            } catch where Pipeline.isRetriable(error) {
                let delay = backoff.next()
                logger.warning("a store is not reachable, retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                status.update { $0.lastError = "\(error)" }
                stop.sleep(delay)
            }
        }
        guard let stores else { return }
        // The display cache gets a connection of its own even on the same server: it
        // belongs to the product-page layer and may move elsewhere.
        let connections = Pipeline.Connections(
            consumer: try KafkaConsumer(config: settings.consumerConfig, logger: logger),
            producer: try KafkaProducer(config: settings.producerConfig, logger: logger),
            hot: stores.hot, displayCache: try RedisClient(url: settings.displayCache), postgres: stores.postgres,
            commitHot: try RedisClient(url: settings.redis), commitPostgres: try probes.connectPostgres())
        logger.info("joining consumer group", metadata: ["kafka.brokers": "\(settings.kafkaBrokers)", "kafka.topics": "\(settings.topics.joined(separator: ","))"])
        let pipeline = Pipeline(settings: settings.pipeline, connections: connections, faults: faults, status: status,
                                repairRedis: { [settings] ifLost in try Self.repairRedis(settings, ifLost: ifLost) }, logger: logger)
        try pipeline.run(shouldStop: { stop.isRaised }, sleep: stop.sleep)
    }
}
