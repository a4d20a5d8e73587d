import ArgumentParser
import BlockingIO
import Postgres
import WMSOperations
import WMSStore

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or upgrade the PostgreSQL schema (WMS_POSTGRES_URL). Safe to run again.")

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let logger = try settings.bootstrapLogging()
        let url = try Settings.postgresURL(settings.layers)
        let thread = DedicatedThread(name: "wms.migrate")
        defer { thread.stop() }
        let (applied, latest, target) = try await thread.run {
            let db = try PostgresConnection(url: url)
            let migrator = try Migrator()
            return (try migrator.migrate(db).map { "\($0.version)_\($0.name)" }, migrator.latestVersion, db.redactedURL)
        }
        logger.info("schema migrated", metadata: [
            "postgres": "\(target)", "applied": "\(applied.isEmpty ? "none" : applied.joined(separator: ","))",
            "version": "\(latest)",
        ])
    }
}
