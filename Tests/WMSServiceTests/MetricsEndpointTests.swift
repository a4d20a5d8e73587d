import Foundation
import Testing
import TestSupport

/// `/metrics`: events by type and outcome, dead letters by code, alerts, batch
/// histograms, lag; and every metric the Grafana dashboard plots exists.
@Suite struct MetricsEndpointTests {
    /// `wms_consumer_lag` has a series for every partition the worker holds from
    /// the moment it holds it, measured from the group's committed offset to the
    /// log end: partitions it never read show 0. It used to appear only for a
    /// partition read since its assignment, so an idle worker showed no data.
    @Test func lagCoversEveryPartitionFromItsAssignment() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("A")
        try await blocking { try f.produce((1...3).map { WMSEvents.receiving("\(f.id)-\($0)", at: "FC1", [(sku, 1)]) }, partition: 2) }
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment)
        let base = try await blocking { try worker.httpBase() }
        let series = (0..<4).map { #"wms_consumer_lag{topic="\#(f.topics[0])",partition="\#($0)"}"# }
        let answer = await waitForHTTP(base + "/metrics", timeout: .seconds(60)) { answer in
            let body = answer?.body ?? ""
            return metricValue(body, "wms_events_total{") == 3 && metricValue(body, series[2]) == 0
        }
        let metrics = answer?.body ?? ""
        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
        #expect(series.allSatisfy { metricValue(metrics, $0) == 0 }, "a partition without its lag:\n\(metrics)")
        try await f.schema.drop()
    }

    @Test func metricsCountWhatTheWorkerDidAndCoverTheDashboard() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("A")
        try await blocking {
            try f.produce([
                WMSEvents.receiving("\(f.id)-1", at: "FC1", [(sku, 5)]),
                WMSEvents.receiving("\(f.id)-1", at: "FC1", [(sku, 5)]),            // a resend
                WMSEvents.pick("\(f.id)-2", at: "FC1", [(sku, 7)]),                  // negative: an alert
                WMSEvents.cycleCount("\(f.id)-3", at: "FC1", sku: sku, expected: 0, actual: 40),
                "{broken", #"{"eventId":"x"}"#,
                OrderEvents.confirmed("\(f.id)-4", order: "O1", [("1", sku, "FC1", 3, nil)]),
            ], partition: 0)
        }
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment)
        let base = try await blocking { try worker.httpBase() }
        let answer = await waitForHTTP(base + "/metrics", timeout: .seconds(60)) { answer in
            let body = answer?.body ?? ""
            return metricValue(body, "wms_events_total{") == 7
                && metricValue(body, #"wms_consumer_lag{topic="\#(f.topics[0])",partition="0"}"#) == 0
        }
        let metrics = answer?.body ?? ""
        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)

        #expect(metricValue(metrics, #"wms_events_total{type="RECEIVING_COMPLETE",outcome="applied"}"#) == 1, "\(metrics)")
        #expect(metricValue(metrics, #"wms_events_total{type="RECEIVING_COMPLETE",outcome="duplicate"}"#) == 1)
        #expect(metricValue(metrics, #"wms_events_total{type="PICK_COMPLETE",outcome="applied"}"#) == 1)
        #expect(metricValue(metrics, #"wms_events_total{type="unknown",outcome="dead_lettered"}"#) == 2)
        #expect(metricValue(metrics, #"wms_dead_letters_total{code="INVALID_JSON"}"#) == 1)
        #expect(metricValue(metrics, #"wms_dead_letters_total{code="INVALID_FIELD"}"#) == 1)
        #expect(metricValue(metrics, #"wms_alerts_total{type="INVENTORY_NEGATIVE_ALERT"}"#) == 1)   // onHand below zero
        #expect(metricValue(metrics, #"wms_alerts_total{type="INVENTORY_VARIANCE_ALERT"}"#) == 1)
        #expect(metricValue(metrics, #"wms_allocation_lines_total{outcome="allocated"}"#) == 1)
        #expect((metricValue(metrics, "wms_batch_messages_count") ?? 0) >= 1)
        #expect((metricValue(metrics, "wms_batch_duration_seconds_count") ?? 0) >= 1)
        #expect(metricValue(metrics, #"wms_consumer_lag{topic="\#(f.topics[0])",partition="0"}"#) == 0)
        #expect(metricValue(metrics, "wms_outbox_backlog") == 0)
        #expect((metricValue(metrics, "wms_last_batch_timestamp_seconds") ?? 0) > Date().timeIntervalSince1970 - 600)

        // Every metric the dashboard plots is exposed.
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/check-deploy")
        let listed = try ChildProcesses.run(["bash", script.path, "--list-dashboard-metrics"], errorsApart: true)
        let names = listed.text.split(separator: "\n").map(String.init)
        #expect(listed.status == 0)
        #expect(names.count >= 10)
        let exposed = Set(metrics.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
        for name in names {
            let found = [name, name + "_bucket", name + "_count", name + "_sum"].contains(where: exposed.contains)
                || ["_bucket", "_count", "_sum"].contains { name.hasSuffix($0) && exposed.contains(name) }
            #expect(found, "the dashboard plots \(name), which /metrics does not expose")
        }

        // Every metric has its help text, and Prometheus's own linter finds nothing.
        for line in metrics.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let name = line.split(separator: " ")[2]
            #expect(metrics.contains("# HELP \(name) "), "\(name) has no help text")
        }
        // promtool is in Debian's `prometheus` package (scripts/install-deps).
        let lint = try ChildProcesses.run(["promtool", "check", "metrics"], input: Data(metrics.utf8))
        let said = lint.text.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(lint.status == 0 && said.isEmpty, "promtool check metrics (exit \(lint.status)): \(said)")
        try await f.schema.drop()
    }
}
