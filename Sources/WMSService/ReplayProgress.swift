import Foundation
import ServiceLifecycle
import WMSPipeline

/// `replay`'s progress on a terminal: events replayed, lag left, rate and time to
/// go, a line every few seconds until the worker has caught up.
struct ReplayProgress: Service {
    let status: PipelineStatus
    var interval: Duration = .seconds(2)

    func run() async throws {
        // Shutdown cancels the sleep: a normal end, not a failure of the group.
        try? await cancelWhenGracefulShutdown {
            let started = ContinuousClock.now
            var window: [(at: ContinuousClock.Instant, done: Int)] = []
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                let snapshot = status.snapshot
                let now = ContinuousClock.now
                window.append((now, snapshot.eventsDone))
                window.removeAll { now - $0.at > .seconds(10) }
                let rate = Self.rate(window)
                guard let lag = snapshot.lag else {
                    Self.print("replay: joining the group and reading… \(snapshot.eventsDone) messages so far")
                    continue
                }
                if lag == 0, snapshot.eventsDone > 0 {
                    let seconds = Double((now - started).components.seconds)
                    Self.print("replay: caught up, \(snapshot.eventsDone) messages in \(Int(seconds)) s; running on as the daemon")
                    return
                }
                let eta = rate > 0 ? "\(Int((Double(lag) / rate).rounded(.up))) s to go" : "time to go unknown"
                Self.print("replay: \(snapshot.eventsDone) messages replayed, lag \(lag), \(Int(rate)) messages/s, \(eta)")
            }
        }
    }

    static func rate(_ window: [(at: ContinuousClock.Instant, done: Int)]) -> Double {
        guard let first = window.first, let last = window.last, last.at > first.at else { return 0 }
        let elapsed = last.at - first.at
        return Double(last.done - first.done) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    static func print(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
