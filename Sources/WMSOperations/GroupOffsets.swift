import Foundation
import Kafka
import Logging

/// Where a replay starts in each partition.
public enum ReplayStart: Sendable, Equatable {
    case beginning
    case offset(Int64)
    /// The first message at or after this time (Unix milliseconds).
    case time(milliseconds: Int64)
}

/// What a replay will do to one partition.
public struct ReplayMove: Sendable, Codable {
    public let topic: String
    public let partition: Int32
    /// The group's committed offset before, nil when none.
    public let committed: Int64?
    public let target: Int64
    public let high: Int64
    /// The start asked for lies beyond the group's position: the group stays where
    /// it is, so that nothing is skipped.
    public let kept: Bool

    public var messagesToRead: Int64 { max(0, high - target) }

    public var description: String {
        let kept = self.kept ? "; the time or offset asked for is past it, so the group stays there and skips nothing" : ""
        return "\(topic)[\(partition)]: from offset \(target) (committed was \(committed.map(String.init) ?? "none"), \(messagesToRead) messages to read\(kept))"
    }
}

/// The consumer group's offsets: joining it alone (proof that no other member is
/// active), planning and committing a replay.
public enum GroupOffsets {
    public struct OtherMembersActive: Error, CustomStringConvertible {
        public let group: String
        public let held: Int
        public let total: Int
        public var description: String {
            "group \(group) has other active members (this one was given \(held) of \(total) partitions): stop every worker of the group first"
        }
    }

    /// Joins the group and waits to be given every partition of `topics`, which
    /// happens only when no other member is active. Returns the consumer holding
    /// them (the caller closes it). Nothing is stored or committed: what the polls
    /// return is read again later.
    public static func joinAlone(settings: Settings, logger: Logger, timeout: Duration = .seconds(60)) throws -> KafkaConsumer {
        let consumer = try KafkaConsumer(config: settings.consumerConfig, logger: logger)
        try consumer.subscribe(settings.topics)
        let all = Set(try settings.topics.flatMap { topic in
            (0..<Int32(try consumer.partitionCount(of: topic, timeout: .seconds(10)))).map { KafkaTopicPartition(topic: topic, partition: $0) }
        })
        // Given only a share, wait a little for a member that was leaving; a share
        // that lasts means others are active.
        let deadline = ContinuousClock.now + timeout
        var firstShare: ContinuousClock.Instant?
        while consumer.assignment != all, ContinuousClock.now < deadline {
            _ = try consumer.poll(maxMessages: 1, timeout: .milliseconds(200))
            if !consumer.assignment.isEmpty, consumer.assignment != all {
                firstShare = firstShare ?? .now
                if ContinuousClock.now - firstShare! > .seconds(10) { break }
            }
        }
        guard consumer.assignment == all else {
            let held = consumer.assignment.count
            try consumer.close()
            throw OtherMembersActive(group: settings.groupID, held: held, total: all.count)
        }
        return consumer
    }

    /// Where each chosen partition will start. Needs no group membership.
    public static func plan(_ consumer: KafkaConsumer, settings: Settings, start: ReplayStart, topic: String?, partition: Int32?) throws -> [ReplayMove] {
        let topics = topic.map { [$0] } ?? settings.topics
        var chosen: [KafkaTopicPartition] = []
        for name in topics {
            let count = Int32(try consumer.partitionCount(of: name, timeout: .seconds(10)))
            if let partition, !(0..<count).contains(partition) {
                throw PlanError("topic \(name) has partitions 0 to \(count - 1), not \(partition)")
            }
            chosen += (0..<count).filter { partition == nil || $0 == partition }.map { KafkaTopicPartition(topic: name, partition: $0) }
        }
        let committed = try consumer.committed(chosen, timeout: .seconds(10))
        let byTime: [KafkaTopicPartition: Int64] = if case .time(let milliseconds) = start {
            try consumer.offsets(forTimes: Dictionary(uniqueKeysWithValues: chosen.map { ($0, milliseconds) }), timeout: .seconds(10))
        } else { [:] }
        return try chosen.map { topicPartition in
            let (low, high) = try consumer.watermarks(of: topicPartition, timeout: .seconds(10))
            return move(topicPartition, start: start, low: low, high: high,
                        committed: committed[topicPartition].flatMap { $0 < 0 ? nil : $0 }, firstAtTime: byTime[topicPartition])
        }
    }

    /// Where one partition starts, from what the broker said: the offsets it keeps
    /// (`low..<high`), the group's committed offset, and for a time the first
    /// offset at or after it (negative: none). A replay only ever moves back: past
    /// the group's position it would skip events never applied (with nothing
    /// committed, the group reads from the first message kept).
    public static func move(_ partition: KafkaTopicPartition, start: ReplayStart, low: Int64, high: Int64,
                            committed: Int64?, firstAtTime: Int64?) -> ReplayMove {
        let asked: Int64 = switch start {
        case .beginning: low
        case .offset(let offset): min(max(offset, low), high)
        case .time: firstAtTime.map { $0 < 0 ? high : min(max($0, low), high) } ?? high
        }
        let target = min(asked, max(committed ?? low, low))
        return ReplayMove(topic: partition.topic, partition: partition.partition, committed: committed, target: target, high: high,
                          kept: target < asked)
    }

    /// Commits the plan's offsets for the group (the consumer must hold the partitions).
    public static func commit(_ moves: [ReplayMove], with consumer: KafkaConsumer) throws {
        try consumer.commit(Dictionary(uniqueKeysWithValues: moves.map { (KafkaTopicPartition(topic: $0.topic, partition: $0.partition), $0.target) }))
    }

    public struct PlanError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
