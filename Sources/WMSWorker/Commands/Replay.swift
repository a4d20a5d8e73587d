import ArgumentParser
import BlockingIO
import Foundation
import Kafka
import Logging

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the consumer group's offsets back, then run.",
        discussion: """
            Replaying is safe: every event is applied once whatever is delivered again. The group's \
            other members must be stopped first: the command joins the group alone, commits the chosen \
            offsets, says what it moved, then runs the daemon as `run` does.
            """)

    @Flag(help: "From the first message each partition still holds.") var fromBeginning = false
    @Option(help: "From this offset (clamped to what each partition holds).") var fromOffset: Int64?
    @Option(help: "From the first message at or after this time (RFC 3339, e.g. 2026-11-27T08:00:00Z).") var fromTime: String?
    @Option(help: "Only this topic (default: every topic the worker consumes).") var topic: String?
    @Option(help: "Only this partition (needs --topic).") var partition: Int32?
    @OptionGroup var common: CommonOptions

    enum Start: Sendable {
        case beginning
        case offset(Int64)
        case time(milliseconds: Int64)
    }

    func validate() throws {
        let chosen = [fromBeginning, fromOffset != nil, fromTime != nil].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("choose exactly one of --from-beginning, --from-offset, --from-time") }
        if let fromOffset, fromOffset < 0 { throw ValidationError("--from-offset must be 0 or more, got \(fromOffset)") }
        if let fromTime, Self.milliseconds(fromTime) == nil {
            throw ValidationError("--from-time: '\(fromTime)' is not an RFC 3339 time with an offset")
        }
        if partition != nil, topic == nil { throw ValidationError("--partition needs --topic") }
    }

    func run() async throws {
        let logger = common.bootstrapLogging()
        let settings = try Settings()
        if let topic {
            guard settings.topics.contains(topic) else {
                throw ValidationError("--topic \(topic) is not one of WMS_TOPICS (\(settings.topics.joined(separator: ",")))")
            }
        }
        let start: Start = fromBeginning ? .beginning : fromOffset.map(Start.offset) ?? .time(milliseconds: Self.milliseconds(fromTime!)!)
        let (topic, partition) = (self.topic, self.partition)
        // Signals are taken from the start: a SIGTERM while the offsets move stops
        // the command cleanly instead of killing it half way.
        let stop = ShutdownSignal(logger: logger)
        let thread = DedicatedThread(name: "wms.replay")
        defer { thread.stop() }
        try await thread.run {
            try Self.moveOffsets(settings: settings, start: start, topic: topic, partition: partition, stop: stop, logger: logger)
        }
        guard !stop.requested else { return }
        try await Run.runDaemon(settings: settings, stop: stop, logger: logger)
    }

    static func moveOffsets(settings: Settings, start: Start, topic: String?, partition: Int32?, stop: ShutdownSignal, logger: Logger) throws {
        let topics = topic.map { [$0] } ?? settings.topics
        let consumer = try KafkaConsumer(config: settings.consumerConfig, logger: logger)
        try consumer.subscribe(settings.topics)
        let all = Set(try settings.topics.flatMap { topic in
            (0..<Int32(try consumer.partitionCount(of: topic, timeout: .seconds(10)))).map { KafkaTopicPartition(topic: topic, partition: $0) }
        })
        // Alone in the group, this member is given every partition.
        let deadline = ContinuousClock.now + .seconds(60)
        while consumer.assignment != all, ContinuousClock.now < deadline, !stop.requested {
            // Nothing is stored or committed here: what a poll returns is read again after the replay.
            _ = try consumer.poll(maxMessages: 1, timeout: .milliseconds(200))
        }
        if stop.requested {
            try consumer.close()
            return
        }
        guard consumer.assignment == all else {
            try consumer.close()
            throw ValidationError("""
                group \(settings.groupID) has other active members (this one holds \(consumer.assignment.count) of \(all.count) \
                partitions): stop every worker of the group, then replay
                """)
        }
        let chosen = all.filter { topics.contains($0.topic) && (partition == nil || $0.partition == partition) }.sorted()
        guard !chosen.isEmpty else { throw ValidationError("no such partition: \(topic ?? "")[\(partition ?? -1)]") }
        let committed = try consumer.committed(chosen, timeout: .seconds(10))
        let byTime: [KafkaTopicPartition: Int64]
        if case .time(let milliseconds) = start {
            byTime = try consumer.offsets(forTimes: Dictionary(uniqueKeysWithValues: chosen.map { ($0, milliseconds) }), timeout: .seconds(10))
        } else {
            byTime = [:]
        }
        var targets: [KafkaTopicPartition: Int64] = [:]
        for topicPartition in chosen {
            let (low, high) = try consumer.watermarks(of: topicPartition, timeout: .seconds(10))
            let target: Int64 = switch start {
            case .beginning: low
            case .offset(let offset): min(max(offset, low), high)
            case .time: byTime[topicPartition].map { $0 < 0 ? high : $0 } ?? high
            }
            targets[topicPartition] = target
            let was = committed[topicPartition].map { $0 < 0 ? "none" : String($0) } ?? "none"
            print("replay \(topicPartition): from offset \(target) (committed was \(was), \(high - target) messages to read again)")
        }
        try consumer.commit(targets)
        try consumer.close()
        logger.notice("group offsets moved back", metadata: ["kafka.group": "\(settings.groupID)", "partitions": "\(targets.count)"])
    }

    /// RFC 3339 with an offset, to Unix milliseconds.
    static func milliseconds(_ text: String) -> Int64? {
        let formats: [Date.ISO8601FormatStyle] = [.iso8601, Date.ISO8601FormatStyle(includingFractionalSeconds: true)]
        for format in formats {
            if let date = try? format.parse(text) { return Int64(date.timeIntervalSince1970 * 1000) }
        }
        return nil
    }
}
