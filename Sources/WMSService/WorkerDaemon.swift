import Dispatch
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import WMSOperations
import WMSPipeline

/// The daemon: the store probes, the HTTP endpoint and the pipeline under one
/// swift-service-lifecycle group. SIGTERM or SIGINT shuts it down gracefully, the
/// pipeline first (it finishes and commits the batch in hand, then leaves the
/// group), within the shutdown timeout; a second signal exits at once.
public struct WorkerDaemon {
    let settings: Settings
    let registry: PrometheusCollectorRegistry
    /// For `replay` on a terminal: the messages it put back, to show progress against.
    let replayProgress: Int64?
    let logger: Logger

    public init(settings: Settings, registry: PrometheusCollectorRegistry, replayProgress: Int64? = nil, logger: Logger) {
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
            services.append(.init(service: ReplayProgress(status: status, planned: replayProgress), successTerminationBehavior: .ignore,
                                  serviceName: "replay-progress"))
        }
        // Last, so that it is the first to be shut down: the endpoint keeps answering
        // (not ready) while the batch in hand is finished.
        services.append(.init(service: PipelineService(settings: settings, status: status, logger: logger),
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
        sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if shuttingDown.isRaised {
                    logger.warning("second signal: exiting at once", metadata: ["signal": "\(number)"])
                    exit(1)
                }
                shuttingDown.raise()
                logger.info("signal received: shutting down gracefully", metadata: ["signal": "\(number)", "timeout": "\(timeout)"])
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.components.seconds * 1000))) {
                    logger.error("graceful shutdown took longer than the timeout: exiting", metadata: ["timeout": "\(timeout)"])
                    exit(1)
                }
            }
            source.resume()
            return source
        }
    }

    deinit {
        sources.forEach { $0.cancel() }
    }
}
