import Dispatch
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import WMSOperations
import WMSPipeline

/// The daemon: the store probes, the HTTP endpoint and the pipeline under one
/// swift-service-lifecycle group. SIGTERM or SIGINT shuts it down gracefully, the
/// pipeline first (it finishes and commits the batch in hand, then leaves the
/// group), within the shutdown timeout; a second signal exits at once.
public struct WorkerDaemon {
    let settings: Settings
    let registry: PrometheusCollectorRegistry
    /// For `replay` on a terminal: what it moved back, to show progress against.
    let replayProgress: [ReplayMove]?
    let logger: Logger

    public init(settings: Settings, registry: PrometheusCollectorRegistry, replayProgress: [ReplayMove]? = nil, logger: Logger) {
        self.settings = settings
        self.registry = registry
        self.replayProgress = replayProgress
        self.logger = logger
    }

    public func run() async throws {
        let status = PipelineStatus()
        let shuttingDown = StopFlag()
        let watchdog = ShutdownWatchdog(timeout: settings.shutdownTimeout, shuttingDown: shuttingDown, logger: logger)
        let probe = HealthProbe(settings: settings, logger: logger)
        let readiness = Readiness(probe: probe, status: status, shuttingDown: shuttingDown)
        // Named: swift-service-lifecycle would otherwise log each service's
        // description, settings and all.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: probe, serviceName: "health-probe"),
            .init(service: HTTPEndpoint.service(address: settings.httpAddress, readiness: readiness, registry: registry, logger: logger),
                  serviceName: "http"),
        ]
        if let replayProgress {
            services.append(.init(service: ReplayProgress(status: status, moves: replayProgress), successTerminationBehavior: .ignore,
                                  serviceName: "replay-progress"))
        }
        // Last, so that it is the first to be shut down: the endpoint keeps answering
        // (not ready) while the batch in hand is finished.
        services.append(.init(service: PipelineService(settings: settings, status: status, stop: shuttingDown, logger: logger),
                              successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .cancelGroup,
                              serviceName: "pipeline"))
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = settings.shutdownTimeout
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
        withExtendedLifetime(watchdog) {}
        logger.info("stopped")
    }
}

/// Bounds a graceful shutdown: after the first SIGTERM or SIGINT, the worker exits
/// anyway once the timeout has passed (a store that hangs must not keep it alive),
/// and a second signal exits at once. swift-service-lifecycle does the graceful
/// part; its cancellation cannot interrupt a blocking C call, this can.
final class ShutdownWatchdog: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(timeout: Duration, shuttingDown: StopFlag, logger: Logger) {
        // Signals counted here, not read off the flag: the pipeline raises that
        // flag itself when the first signal reaches it through the service group.
        let signals = Counter()
        sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if signals.increment() > 1 {
                    logger.warning("second signal: exiting at once", metadata: ["signal": "\(number)"])
                    _exit(1)
                }
                shuttingDown.raise()
                logger.info("signal received: shutting down gracefully", metadata: ["signal": "\(number)", "timeout": "\(timeout)"])
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.components.seconds * 1000))) {
                    logger.error("graceful shutdown took longer than the timeout: exiting", metadata: ["timeout": "\(timeout)"])
                    // _exit: other threads (librdkafka's, libpq's) are still running.
                    _exit(1)
                }
            }
            source.resume()
            return source
        }
    }

    deinit {
        sources.forEach { $0.cancel() }
    }

    private final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    }
}
