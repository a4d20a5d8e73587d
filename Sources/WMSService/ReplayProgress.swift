import Foundation
import ServiceLifecycle
import WMSPipeline

/// `replay`'s progress on a terminal: messages replayed of those the replay moved
/// back, rate, time to go and the consumer lag, a line every few seconds until it
/// has read them all.
struct ReplayProgress: Service {
    let status: PipelineStatus
    /// Messages the moved offsets put back in front of the group.
    let planned: Int64
    var interval: Duration = .seconds(2)

    func run() async throws {
        guard planned > 0 else {
            Self.print("replay: nothing to read again; running on as the daemon")
            return
        }
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
                let done = Int64(snapshot.eventsDone)
                if done >= planned {
                    Self.print("replay: caught up, \(done) messages read again in \((now - started).components.seconds) s; running on as the daemon")
                    return
                }
                let rate = Self.rate(window)
                let eta = rate > 0 ? "~\(Int((Double(planned - done) / rate).rounded(.up))) s to go" : "time to go unknown"
                let lag = snapshot.lag.map { ", lag \($0)" } ?? ""
                Self.print("replay: \(done) of \(planned) messages read again, \(Int(rate)) messages/s, \(eta)\(lag)")
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
