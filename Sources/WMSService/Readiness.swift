import Metrics
import Synchronization
import WMSPipeline

/// Whether this worker should be sent traffic, or rather be counted on: every
/// store answers, and the consume loop goes round without failing batches.
public struct Readiness: Sendable {
    public struct Report: Sendable, Encodable {
        public var ready: Bool
        public var checks: [String: HealthProbe.Check]
    }

    let probe: HealthProbe
    let status: PipelineStatus
    let shuttingDown: StopFlag
    private let gauge = Gauge(label: WorkerMetric.ready.name)

    public init(probe: HealthProbe, status: PipelineStatus, shuttingDown: StopFlag) {
        self.probe = probe
        self.status = status
        self.shuttingDown = shuttingDown
    }

    public func report() -> Report {
        var checks = probe.checks
        checks["consuming"] = consuming()
        let ready = checks.values.allSatisfy(\.ok)
        gauge.record(ready ? 1 : 0)
        return Report(ready: ready, checks: checks)
    }

    private func consuming() -> HealthProbe.Check {
        let snapshot = status.snapshot
        if shuttingDown.isRaised || snapshot.stopped { return .init(ok: false, detail: "shutting down") }
        guard let lastLoop = snapshot.lastLoop else {
            return .init(ok: false, detail: "not consuming yet" + (snapshot.lastError.map { ": \($0)" } ?? ""))
        }
        // A failing store first: during a long backoff it is the reason the loop is quiet.
        if snapshot.failingSince != nil {
            return .init(ok: false, detail: "batches fail and are retried: \(snapshot.lastError ?? "")")
        }
        if ContinuousClock.now - lastLoop > .seconds(15) {
            return .init(ok: false, detail: "the consume loop has not gone round for \(ContinuousClock.now - lastLoop)")
        }
        return .init(ok: true, detail: "\(snapshot.assignedPartitions) partitions assigned")
    }
}
