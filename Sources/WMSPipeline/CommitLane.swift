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
            let result = Result { try finisher.finish(batch) }
            condition.withLock {
                outcome = result
                condition.signal()
            }
        }
    }

    /// Waits for the batch on the lane, if any, and frees the lane: the batch, and
    /// its report or why it could not be finished.
    func wait() -> (batch: PreparedBatch, outcome: Result<BatchReport, any Error>)? {
        guard let batch else { return nil }
        condition.lock()
        while outcome == nil { condition.wait() }
        let result = outcome!
        outcome = nil
        condition.unlock()
        self.batch = nil
        inFlight = nil
        return (batch, result)
    }
}
