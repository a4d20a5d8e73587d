import BlockingIO
import Foundation

/// The second half of every batch, on a thread of its own: `BatchFinisher` makes
/// batch N durable here while the pipeline thread prepares batch N+1, so the
/// worker, Redis and PostgreSQL work at the same time instead of in turn.
///
/// One batch at a time: the pipeline thread hands a batch over (`start`) and
/// takes its outcome back (`wait`) before it hands over the next, so the
/// finisher and its connections are only ever used on the lane's thread, and
/// offsets are committed in batch order.
final class CommitLane: @unchecked Sendable {
    private let thread = DedicatedThread(name: "wms.commit")
    /// Used on `thread` only.
    private let finisher: BatchFinisher
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var outcome: Result<BatchReport, any Error>?
    /// The batch's PostgreSQL transaction has committed (guarded by `condition`).
    private var written = false
    /// Pipeline thread only.
    private var batch: PreparedBatch?
    /// What the batch on the lane means for the next one (pipeline thread only).
    private(set) var inFlight: InFlight?

    init(finisher: BatchFinisher) {
        self.finisher = finisher
    }

    deinit { thread.stop() }

    /// Starts finishing `batch`; the lane must be free (`wait` first).
    func start(_ batch: PreparedBatch) {
        precondition(self.batch == nil, "the commit lane already has a batch")
        self.batch = batch
        inFlight = batch.inFlight
        thread.perform { [self] in
            let result = Result {
                try finisher.finish(batch) {
                    condition.withLock {
                        written = true
                        condition.broadcast()
                    }
                }
            }
            condition.withLock {
                outcome = result
                condition.broadcast()
            }
        }
    }

    /// Waits until the batch on the lane, if any, has committed its PostgreSQL
    /// transaction, which is all a batch prepared meanwhile needs before it reads
    /// what that one writes: the release and the publish go on behind it. False if
    /// the batch ended without committing (`wait` tells why).
    func waitUntilWritten() -> Bool {
        guard batch != nil else { return true }
        condition.lock()
        defer { condition.unlock() }
        while !written && outcome == nil { condition.wait() }
        return written
    }

    /// Waits for the batch on the lane, if any, and frees the lane: the batch, and
    /// its report or why it could not be finished.
    func wait() -> (batch: PreparedBatch, outcome: Result<BatchReport, any Error>)? {
        guard let batch else { return nil }
        condition.lock()
        while outcome == nil { condition.wait() }
        let result = outcome!
        outcome = nil
        written = false
        condition.unlock()
        self.batch = nil
        inFlight = nil
        return (batch, result)
    }
}
