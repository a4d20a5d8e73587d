import Foundation
import Kafka
import Testing
import TestSupport

/// `wms-worker replay`: moves the group's offsets (by offset, by time, per topic and
/// partition), refuses while another member is active, --dry-run changes nothing,
/// and the daemon then reads exactly the moved range again (as duplicates).
@Suite struct ReplayCommandTests {
    /// Two topics; per partition of the first topic 10 receipts, the second topic 5
    /// on partition 0. Applied once by `run`, which is stopped.
    static func applied() async throws -> PipelineFixture {
        let f = try await PipelineFixture.create(topics: 2)
        try await blocking {
            for partition in 0..<4 {
                try f.produce((0..<10).map { WMSEvents.receiving("\(f.id)-\(partition)-\($0)", at: "FC1", [(f.sku("A"), 1)]) },
                              topic: 0, partition: Int32(partition))
            }
            try f.produce((0..<5).map { WMSEvents.receiving("\(f.id)-b-\($0)", at: "FC1", [(f.sku("B"), 1)]) }, topic: 1, partition: 0)
        }
        try await Self.runUntil(f, arguments: ["run"], applied: 45, duplicates: 0)
        return f
    }

    /// Runs the worker with `arguments` until its metrics show `applied` and
    /// `duplicates` events, then stops it; returns its output.
    @discardableResult
    static func runUntil(_ f: PipelineFixture, arguments: [String], applied: Int, duplicates: Int) async throws -> String {
        let worker = try WorkerProcess(arguments, environment: f.workerEnvironment)
        let base = try await blocking { try worker.httpBase(timeout: .seconds(60)) }
        let answer = await waitForHTTP(base + "/metrics", timeout: .seconds(60)) { answer in
            let body = answer?.body ?? ""
            return metricValue(body, #"wms_events_total{type="RECEIVING_COMPLETE",outcome="applied"}"#) == Double(applied)
                && metricValue(body, #"wms_events_total{type="RECEIVING_COMPLETE",outcome="duplicate"}"#) == Double(duplicates)
        }
        // A moment more: a replay reading past its range would show here. With
        // --progress, until its progress says so (a line every few seconds).
        try await Task.sleep(for: .seconds(1))
        if arguments.contains("--progress") {
            try? await blocking { try worker.waitForLog("replay: caught up", timeout: .seconds(20)) }
        }
        let body = await httpGet(base + "/metrics")?.body ?? answer?.body ?? ""
        worker.signal(SIGTERM)
        let status = try await blocking { try worker.waitForExit(timeout: .seconds(40)) }
        #expect(status == 0)
        #expect(metricValue(body, #"wms_events_total{type="RECEIVING_COMPLETE",outcome="applied"}"#) == Double(applied), "\(worker.log.suffix(3000))")
        #expect(metricValue(body, #"wms_events_total{type="RECEIVING_COMPLETE",outcome="duplicate"}"#) == Double(duplicates), "\(worker.log.suffix(3000))")
        return worker.log
    }

    @Test func fromAnOffsetOfOnePartition() async throws {
        let f = try await Self.applied()
        let output = try await Self.runUntil(f, arguments: ["replay", "--from-offset", "6", "--topic", f.topics[0], "--partition", "2", "--progress"],
                                             applied: 0, duplicates: 4)
        #expect(output.contains("replay \(f.topics[0])[2]: from offset 6 (committed was 10, 4 messages to read)"))
        #expect(output.contains("replay: caught up, 4 messages read again"), "\(output.suffix(2000))")
        #expect(!output.contains("\(f.topics[0])[1]:"))
        try await f.schema.drop()
    }

    /// A start past the group's position would skip events never applied: the
    /// group stays where it is instead, and reads them.
    @Test func aStartPastTheGroupsPositionSkipsNothing() async throws {
        let f = try await Self.applied()
        try await blocking {
            try f.produce((0..<5).map { WMSEvents.receiving("\(f.id)-new-\($0)", at: "FC1", [(f.sku("A"), 1)]) }, topic: 0, partition: 1)
        }
        let output = try await Self.runUntil(f, arguments: ["replay", "--from-offset", "12", "--topic", f.topics[0]], applied: 5, duplicates: 0)
        #expect(output.contains("replay \(f.topics[0])[1]: from offset 10 (committed was 10, 5 messages to read; the time or offset asked for is past it"),
                "\(output.suffix(3000))")
        #expect(output.contains("replay \(f.topics[0])[0]: from offset 10 (committed was 10, 0 messages to read)"))
        try await f.schema.drop()
    }

    @Test func fromTheBeginningOfOneTopic() async throws {
        let f = try await Self.applied()
        let output = try await Self.runUntil(f, arguments: ["replay", "--from-beginning", "--topic", f.topics[1]], applied: 0, duplicates: 5)
        #expect(output.contains("replay \(f.topics[1])[0]: from offset 0 (committed was 5, 5 messages to read)"))
        #expect(output.contains("offsets moved for 4 partitions, 5 messages to read"))
        try await f.schema.drop()
    }

    /// By time, the broker says where each partition's first message at or after
    /// the time is. (librdkafka's mock broker answers "none" to every time, which
    /// real Kafka answers only for a time after the last message: so here the time
    /// is after the last message, and nothing is read again.)
    @Test func fromATimeAfterTheLastMessageReadsNothingAgain() async throws {
        let f = try await Self.applied()
        let time = Date().addingTimeInterval(60).formatted(.iso8601)
        let output = try await Self.runUntil(f, arguments: ["replay", "--from-time", time, "--progress"], applied: 0, duplicates: 0)
        #expect(output.contains("replay \(f.topics[0])[3]: from offset 10 (committed was 10, 0 messages to read)"))
        #expect(output.contains("replay \(f.topics[1])[0]: from offset 5 (committed was 5, 0 messages to read)"))
        #expect(output.contains("replay: nothing to read again; running on as the daemon"), "\(output.suffix(2000))")
        try await f.schema.drop()
    }

    @Test func aDryRunChangesNothing() async throws {
        let f = try await Self.applied()
        let worker = try WorkerProcess(["replay", "--from-beginning", "--dry-run"], environment: f.workerEnvironment)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(60)) } == 0)
        #expect(worker.log.contains("dry run: group \(f.group) would replay 8 partitions:"))
        #expect(worker.log.contains("\(f.topics[0])[0]: from offset 0 (committed was 10, 10 messages to read)"))
        #expect(worker.log.contains("dry run: 45 messages would be read again; nothing was changed"))
        let committed = try await blocking {
            let consumer = try KafkaConsumer(config: KafkaConfig(bootstrapServers: TestEnvironment.kafkaBrokers, properties: ["group.id": f.group]),
                                             logger: PipelineFixture.logger)
            defer { try? consumer.close() }
            return try consumer.committed((0..<4).map { KafkaTopicPartition(topic: f.topics[0], partition: $0) }, timeout: .seconds(10))
        }
        #expect(committed.values.sorted() == [10, 10, 10, 10])
        try await f.schema.drop()
    }

    @Test func refusedWhileAnotherMemberIsActive() async throws {
        let f = try await Self.applied()
        let running = try WorkerProcess(["run"], environment: f.workerEnvironment)
        let base = try await blocking { try running.httpBase() }
        _ = await waitForHTTP(base + "/readyz", timeout: .seconds(60)) { $0?.status == 200 }
        let replay = try WorkerProcess(["replay", "--from-beginning"], environment: f.workerEnvironment)
        let status = try await blocking { try replay.waitForExit(timeout: .seconds(90)) }
        #expect(status != 0)
        #expect(replay.log.contains("group \(f.group) has other active members"), "\(replay.log.suffix(2000))")
        #expect(replay.log.contains("stop every worker of the group first"))
        running.signal(SIGTERM)
        #expect(try await blocking { try running.waitForExit(timeout: .seconds(40)) } == 0)
        try await f.schema.drop()
    }

    @Test func badReplayArgumentsAreNamed() async throws {
        let f = try await PipelineFixture.create()
        for (arguments, message) in [
            (["replay"], "choose exactly one of --from-beginning, --from-offset, --from-time"),
            (["replay", "--from-time", "yesterday"], "--from-time: 'yesterday' is not an RFC 3339 time"),
            (["replay", "--from-offset=-3"], "--from-offset must be 0 or more"),
            (["replay", "--from-beginning", "--partition", "1"], "--partition needs --topic"),
            (["replay", "--from-beginning", "--topic", "elsewhere"], "--topic elsewhere is not one of the topics the worker consumes"),
        ] {
            let worker = try WorkerProcess(arguments, environment: f.workerEnvironment)
            #expect(try await blocking { try worker.waitForExit(timeout: .seconds(30)) } != 0)
            #expect(worker.log.contains(message), "\(arguments): \(worker.log)")
        }
        try await f.schema.drop()
    }
}
