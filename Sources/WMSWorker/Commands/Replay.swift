import ArgumentParser
import BlockingIO
import Foundation
import Kafka
import WMSDomain
import WMSOperations
import WMSService

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the consumer group's offsets back, then run.",
        discussion: """
            Replaying is safe: every event is applied once whatever is delivered again. The group's \
            other workers must be stopped first: the command joins the group and refuses unless it \
            is given every partition. It prints what it will move, commits the new offsets, then \
            runs the daemon as `run` does, showing progress on a terminal until it has caught up. \
            --dry-run prints the moves and changes nothing.
            """)

    @Flag(help: "From the first message each partition still holds.") var fromBeginning = false
    @Option(help: "From this offset (clamped to what each partition holds).") var fromOffset: Int64?
    @Option(help: "From the first message at or after this time (RFC 3339, e.g. 2026-11-27T08:00:00Z).", transform: { text in
        guard let milliseconds = RFC3339.epochMilliseconds(text) else {
            throw ValidationError("--from-time: '\(text)' is not an RFC 3339 time with an offset (e.g. 2026-11-27T08:00:00Z)")
        }
        return milliseconds
    })
    var fromTime: Int64?
    @Option(help: "Only this topic (default: every topic the worker consumes).") var topic: String?
    @Option(help: "Only this partition (needs --topic).") var partition: Int32?
    @Flag(help: "Print what would be moved, change nothing.") var dryRun = false
    @Flag(inversion: .prefixedNo, help: "Progress lines (default: when standard output is a terminal).") var progress: Bool?
    @OptionGroup var settings: SettingsOptions

    func validate() throws {
        let chosen = [fromBeginning, fromOffset != nil, fromTime != nil].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("choose exactly one of --from-beginning, --from-offset, --from-time") }
        if let fromOffset, fromOffset < 0 { throw ValidationError("--from-offset must be 0 or more, got \(fromOffset)") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more, got \(partition)") }
        if partition != nil, topic == nil { throw ValidationError("--partition needs --topic") }
    }

    func run() async throws {
        let (settings, logger) = try settings.daemonSettings()
        if let topic, !settings.topics.contains(topic) {
            throw ValidationError("--topic \(topic) is not one of the topics the worker consumes (\(settings.topics.joined(separator: ",")))")
        }
        let start: ReplayStart = if let fromOffset { .offset(fromOffset) } else if let fromTime { .time(milliseconds: fromTime) } else { .beginning }
        let (topic, partition, dryRun) = (self.topic, self.partition, self.dryRun)
        let thread = DedicatedThread(name: "wms.replay")
        defer { thread.stop() }
        let moved = try await thread.run { () throws -> [ReplayMove] in
            if dryRun {
                let consumer = try KafkaConsumer(config: settings.consumerConfig, logger: logger)
                let moves = try GroupOffsets.plan(consumer, settings: settings, start: start, topic: topic, partition: partition)
                try consumer.close()
                say("dry run: group \(settings.groupID) would replay \(moves.count) partitions:")
                moves.forEach { say("  \($0.description)") }
                say("dry run: \(moves.map(\.messagesToRead).reduce(0, +)) messages would be read again; nothing was changed")
                return []
            }
            say("replay: joining group \(settings.groupID) alone to move its offsets (every other worker of the group must be stopped)")
            let consumer = try GroupOffsets.joinAlone(settings: settings, logger: logger)
            let moves = try GroupOffsets.plan(consumer, settings: settings, start: start, topic: topic, partition: partition)
            moves.forEach { say("replay \($0.description)") }
            try GroupOffsets.commit(moves, with: consumer)
            try consumer.close()
            say("replay: offsets moved for \(moves.count) partitions, \(moves.map(\.messagesToRead).reduce(0, +)) messages to read; running")
            logger.notice("group offsets moved back", metadata: ["partitions": "\(moves.count)"])
            return moves
        }
        guard !dryRun else { return }
        let showProgress = progress ?? (isatty(STDOUT_FILENO) == 1)
        try await WorkerDaemon(settings: settings, registry: WorkerMetrics.bootstrap(), replayProgress: showProgress ? moved : nil,
                               logger: logger).run()
    }
}
