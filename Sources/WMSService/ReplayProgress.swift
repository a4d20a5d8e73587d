import Foundation
import Kafka
import ServiceLifecycle
import WMSOperations
import WMSPipeline

/// `replay`'s progress on a terminal: how much of what the replay moved back has
/// been read again (counted per moved partition, from the offsets committed),
/// rate, time to go and lag, a line every few seconds until it is all read.
struct ReplayProgress: Service {
    let status: PipelineStatus
    let moves: [ReplayMove]
    var interval: Duration = .seconds(2)

    var planned: Int64 { moves.map(\.messagesToRead).reduce(0, +) }

    /// Messages of the moved ranges read and committed so far.
    func done(_ snapshot: PipelineStatus.Snapshot) -> Int64 {
        moves.map { move in
            let committed = snapshot.committed[KafkaTopicPartition(topic: move.topic, partition: move.partition)] ?? move.target
            return min(max(committed, move.target), move.high) - move.target
        }.reduce(0, +)
    }

    func run() async throws {
        // Shutdown cancels the sleeps: a normal end, not a failure of the group.
        // Once caught up it stays until then, as a service of the group that ends
        // early would fail the group's shutdown.
        try? await cancelWhenGracefulShutdown {
            let planned = self.planned
            guard planned > 0 else {
                say("replay: nothing to read again; running on as the daemon")
                while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
                return
            }
            let started = ContinuousClock.now
            var window: [(at: ContinuousClock.Instant, done: Int64)] = []
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                let snapshot = status.snapshot
                let now = ContinuousClock.now
                let done = self.done(snapshot)
                window.append((now, done))
                window.removeAll { now - $0.at > .seconds(10) }
                if done >= planned {
                    say("replay: caught up, \(done) messages read again in \((now - started).components.seconds) s; running on as the daemon")
                    while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
                    return
                }
                let rate = Self.rate(window)
                let eta = rate > 0 ? "~\(Int((Double(planned - done) / rate).rounded(.up))) s to go" : "time to go unknown"
                let lag = snapshot.lag.map { ", lag \($0)" } ?? ""
                say("replay: \(done) of \(planned) messages read again, \(Int(rate)) messages/s, \(eta)\(lag)")
            }
        }
    }

    static func rate(_ window: [(at: ContinuousClock.Instant, done: Int64)]) -> Double {
        guard let first = window.first, let last = window.last, last.at > first.at else { return 0 }
        return Double(last.done - first.done) / ((last.at - first.at) / .seconds(1))
    }
}
