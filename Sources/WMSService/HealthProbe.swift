import BlockingIO
import Kafka
import Logging
import Metrics
import Postgres
import Redis
import ServiceLifecycle
import Synchronization
import WMSOperations
import WMSPipeline

/// Asks Kafka, Redis and PostgreSQL every few seconds whether they answer, on
/// connections of its own (so a probe never waits behind a batch), and keeps the
/// answers for `/readyz` and the `wms_dependency_up` gauges.
public final class HealthProbe: Service, Sendable {
    public struct Check: Sendable, Encodable {
        public var ok: Bool
        public var detail: String
    }

    let settings: Settings
    let interval: Duration
    let logger: Logger
    private let results = Mutex<[String: (check: Check, at: ContinuousClock.Instant)]>([:])
    private let gauges: [String: Gauge]

    public static let dependencies = ["kafka", "redis", "postgres"]

    public init(settings: Settings, interval: Duration = .seconds(2), logger: Logger) {
        self.settings = settings
        self.interval = interval
        self.logger = logger
        gauges = Dictionary(uniqueKeysWithValues: Self.dependencies.map { ($0, Gauge(label: WorkerMetric.dependencyUp.name, dimensions: [("dependency", $0)])) })
    }

    /// The latest answers; one older than three intervals and 10 s counts as failed
    /// (a probe that hangs must not leave an old success standing).
    public var checks: [String: Check] {
        let now = ContinuousClock.now
        return results.withLock { results in
            Dictionary(uniqueKeysWithValues: Self.dependencies.map { name in
                guard let result = results[name] else { return (name, Check(ok: false, detail: "not probed yet")) }
                guard now - result.at <= interval * 3 + .seconds(10) else { return (name, Check(ok: false, detail: "probe did not answer in time")) }
                return (name, result.check)
            })
        }
    }

    public func run() async throws {
        let thread = DedicatedThread(name: "wms.health")
        defer { thread.stop() }
        let connections = Connections(settings: settings, logger: logger)
        // Shutdown cancels the sleep: a normal end, not a failure of the group.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let checks = try await thread.run { connections.probe() }
                let now = ContinuousClock.now
                self.results.withLock { results in
                    for (name, check) in checks {
                        if let before = results[name], before.check.ok != check.ok {
                            self.logger.log(level: check.ok ? .notice : .warning, "\(name) \(check.ok ? "reachable again" : "not reachable")",
                                            metadata: ["dependency": "\(name)", "detail": "\(check.detail)"])
                        }
                        results[name] = (check, now)
                    }
                }
                for (name, check) in checks { self.gauges[name]?.record(check.ok ? 1 : 0) }
                try await Task.sleep(for: self.interval)
            }
        }
        // Closing a client blocks (librdkafka flushes): on the probe's thread.
        _ = try? await thread.run { connections.close() }
    }

    /// The probe's own clients, made again after a failure. Used only on the probe's thread.
    private final class Connections: @unchecked Sendable {
        let settings: Settings
        let logger: Logger
        var redis: RedisClient?
        var postgres: PostgresConnection?
        var kafka: KafkaProducer?

        init(settings: Settings, logger: Logger) {
            self.settings = settings
            self.logger = logger
        }

        func close() {
            (redis, postgres, kafka) = (nil, nil, nil)
        }

        func probe() -> [String: Check] {
            [
                "redis": check {
                    let redis = try redis ?? RedisClient(url: settings.redis)
                    self.redis = redis
                    _ = try redis.send("PING")
                } onFailure: { self.redis = nil },
                "postgres": check {
                    let postgres = try postgres ?? PostgresConnection(url: settings.postgresURL)
                    self.postgres = postgres
                    _ = try postgres.query("SELECT 1")
                } onFailure: { self.postgres = nil },
                "kafka": check {
                    // Quiet: a broker that is down makes librdkafka log on every retry;
                    // the probe's own result says it once.
                    let kafka = try kafka ?? KafkaProducer(config: settings.producerConfig, logger: Logger(label: "wms.health.kafka", factory: { _ in SwiftLogNoOpLogHandler() }))
                    self.kafka = kafka
                    _ = try kafka.partitionCount(of: settings.topics[0], timeout: .seconds(2))
                } onFailure: {},
            ]
        }

        private func check(_ body: () throws -> Void, onFailure: () -> Void) -> Check {
            do {
                try body()
                return Check(ok: true, detail: "ok")
            } catch {
                onFailure()
                return Check(ok: false, detail: "\(error)")
            }
        }
    }
}
