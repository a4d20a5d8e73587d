import ArgumentParser
import WMSService

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon until SIGTERM or SIGINT.",
        discussion: """
            Connects to Redis, PostgreSQL and Kafka (retrying with backoff until each answers), \
            joins the consumer group and applies every event of its partitions. Serves /healthz, \
            /readyz and /metrics on WMS_HTTP_ADDR. On SIGTERM or SIGINT it finishes and commits \
            the batch in hand, leaves the group and exits 0 (within WMS_SHUTDOWN_TIMEOUT); a \
            second signal exits at once.
            """)

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let (settings, logger) = try settings.daemonSettings()
        try await WorkerDaemon(settings: settings, registry: WorkerMetrics.bootstrap(), logger: logger).run()
    }
}
