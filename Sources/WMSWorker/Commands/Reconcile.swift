import ArgumentParser
import BlockingIO
import Foundation
import Postgres
import Redis
import WMSOperations
import WMSService

struct Reconcile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare Redis with inventory_levels, the ledger, allocations and backorders; --repair rebuilds Redis from PostgreSQL.",
        discussion: """
            Prints every SKU-location whose Redis hash differs from inventory_levels, or whose \
            inventory_levels row differs from the sum of the ledger, and every order line whose Redis \
            line key differs from allocations, whose waiting line is missing from Redis or its backorder \
            queue, or whose queue member has no waiting line in backorders. Exit status: 0 no drift, 2 drift \
            found (or left after a repair), 1 the check itself failed. \
            --repair is the recovery path after Redis lost data: it rebuilds the hashes, backorder \
            queues and waiting lines from PostgreSQL. It is safe only while every \
            worker of the group is stopped: it checks that by joining the group alone, and refuses \
            otherwise. PostgreSQL is never changed.
            """)

    @Flag(help: "Rebuild Redis from PostgreSQL (every worker of the group stopped).") var repair = false
    @Flag(help: "The report as JSON.") var json = false
    @Option(help: "Who writes `reserved` in Redis: checkout-service (not compared; kept on repair) or worker.")
    var reserved: ReservedOwnership = .checkoutService
    @Option(help: "List at most this many drifted SKU-locations, and as many order lines (the counts are always exact).")
    var maxListed = 1000
    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let (settings, logger) = try settings.daemonSettings()
        let (repair, json, reserved, maxListed) = (self.repair, self.json, self.reserved, self.maxListed)
        let thread = DedicatedThread(name: "wms.reconcile")
        defer { thread.stop() }
        let drift = try await thread.run { () throws -> Bool in
            let reconciler = Reconciler(hot: try RedisClient(url: settings.redis), postgres: try PostgresConnection(url: settings.postgresURL),
                                        displayCache: try RedisClient(url: settings.displayCache), reserved: reserved)
            guard repair else {
                let report = try reconciler.compareSettled(maxListed: maxListed)
                Self.show(report, json: json)
                return report.hasDrift
            }
            say("repair: safe only while every worker of group \(settings.groupID) is stopped; checking that no member is active")
            let guardian = try GroupOffsets.joinAlone(settings: settings, logger: logger)
            // Held through the repair, so a worker started meanwhile gets a share at
            // most, not the whole group. It is not polled: a repair longer than
            // max.poll.interval.ms (300 s by default) loses it.
            defer { try? guardian.close() }
            let before = try reconciler.compare(maxListed: maxListed)
            say("repair: before, \(before.driftedSKULocations) of \(before.skuLocations) SKU-locations drift; rebuilding Redis from PostgreSQL")
            let summary = try reconciler.repair()
            let after = try reconciler.compare(maxListed: maxListed)
            if json {
                Self.show(after, json: true)
            } else {
                say(summary.table())
                say("repair: after, " + (after.hasDrift ? "drift remains:" : "no drift"))
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
}

extension ReservedOwnership: ExpressibleByArgument {}
