import ArgumentParser
import BlockingIO
import Foundation
import Postgres
import Redis
import WMSOperations

struct Reconcile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the Redis hashes with inventory_levels and the ledger; --repair rebuilds Redis from PostgreSQL.",
        discussion: """
            Prints every SKU-location whose Redis hash differs from inventory_levels, or whose \
            inventory_levels row differs from the sum of the ledger. Exit status: 0 no drift, 2 drift \
            found (or left after a repair), 1 the check itself failed. \
            --repair is the recovery path after Redis lost data: it rebuilds the hashes, backorder \
            queues, waiting lines and pick tallies from PostgreSQL. It is safe only while every \
            worker of the group is stopped: it checks that by joining the group alone, and refuses \
            otherwise. PostgreSQL is never changed.
            """)

    @Flag(help: "Rebuild Redis from PostgreSQL (every worker of the group stopped).") var repair = false
    @Flag(help: "The report as JSON.") var json = false
    @Option(help: "Who writes `reserved` in Redis: checkout-service (not compared; kept on repair) or worker.")
    var reserved: ReservedOwnership = .checkoutService
    @Option(help: "List at most this many drifted SKU-locations (the count is always exact).") var maxListed = 1000
    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let (settings, logger) = try settings.daemonSettings()
        let (repair, json, reserved, maxListed) = (self.repair, self.json, self.reserved, self.maxListed)
        let thread = DedicatedThread(name: "wms.reconcile")
        defer { thread.stop() }
        let drift = try await thread.run { () throws -> Bool in
            let reconciler = Reconciler(hot: try RedisConnection(url: settings.redis), postgres: try PostgresConnection(url: settings.postgresURL),
                                        displayCache: try RedisConnection(url: settings.displayCache), reserved: reserved)
            guard repair else {
                // With workers running, a SKU-location in the middle of a batch (Redis
                // written, PostgreSQL not yet) differs for a moment: only what differs
                // in both passes, 2 s apart, counts. (Beyond 100,000 drifted
                // SKU-locations this is no passing moment: the second pass stands.)
                let listable = max(maxListed, 100_000)
                var report = try reconciler.compare(maxListed: listable)
                if report.hasDrift {
                    Thread.sleep(forTimeInterval: 2)
                    let first = report.driftedSKULocations <= listable ? Set(report.drifts.map(\.redisKey)) : nil
                    report = try reconciler.compare(maxListed: listable)
                    if let first, report.driftedSKULocations <= listable {
                        report.drifts = report.drifts.filter { first.contains($0.redisKey) }
                        report.driftedSKULocations = report.drifts.count
                    }
                }
                report.maxListed = maxListed
                report.drifts = Array(report.drifts.prefix(maxListed))
                Self.show(report, json: json)
                return report.hasDrift
            }
            Self.say("repair: safe only while every worker of group \(settings.groupID) is stopped; checking that no member is active")
            guard let guardian = try GroupOffsets.joinAlone(settings: settings, logger: logger, shouldStop: { false }) else { return true }
            // Held through the repair: a worker that starts meanwhile shares the group
            // with it instead of quietly consuming alone.
            defer { try? guardian.close() }
            let before = try reconciler.compare(maxListed: maxListed)
            Self.say("repair: before, \(before.driftedSKULocations) of \(before.skuLocations) SKU-locations drift; rebuilding Redis from PostgreSQL")
            let summary = try reconciler.repair()
            let after = try reconciler.compare(maxListed: maxListed)
            if json {
                Self.show(after, json: true)
            } else {
                Self.say(summary.table())
                Self.say("repair: after, " + (after.hasDrift ? "drift remains:" : "no drift"))
                if after.hasDrift { Self.show(after, json: false) }
            }
            logger.notice("Redis rebuilt from PostgreSQL", metadata: [
                "drift_before": "\(before.driftedSKULocations)", "drift_after": "\(after.driftedSKULocations)",
            ])
            return after.hasDrift
        }
        if drift { throw ExitCode(2) }
    }

    static func show(_ report: ReconcileReport, json: Bool) {
        if json, let data = try? report.json() {
            say(String(decoding: data, as: UTF8.self))
        } else {
            say(report.table())
        }
    }

    static func say(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}

extension ReservedOwnership: ExpressibleByArgument {}
