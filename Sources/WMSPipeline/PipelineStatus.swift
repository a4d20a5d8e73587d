import Foundation
import Kafka
import Synchronization

/// What the consume loop last did, for readers on other threads: `/readyz` (is it
/// consuming?) and `replay`'s progress line (how far behind is it?).
public final class PipelineStatus: Sendable {
    public struct Snapshot: Sendable {
        /// When the loop last went round (it polls at least every poll timeout).
        public var lastLoop: ContinuousClock.Instant?
        /// Since when batches fail (a store is down), and the last failure.
        public var failingSince: ContinuousClock.Instant?
        public var lastError: String?
        public var assignedPartitions = 0
        /// Messages beyond the read position, summed over the assigned partitions
        /// whose position is known.
        public var lag: Int64?
        /// Per partition, the offset after the last committed message of this run.
        public var committed: [KafkaTopicPartition: Int64] = [:]
        public var stopped = false
    }

    private let state = Mutex(Snapshot())

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    public func update(_ change: (inout Snapshot) -> Void) { state.withLock { change(&$0) } }
}
