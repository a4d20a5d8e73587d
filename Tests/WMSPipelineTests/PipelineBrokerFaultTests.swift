import Foundation
import Kafka
import Testing
import TestSupport
import WMSDomain
import WMSPipeline

/// Broker faults (issue 11): the worker rides through them, commits nothing
/// early, and loses and doubles nothing.
@Suite struct PipelineBrokerFaultTests {
    /// An offset commit the broker refuses for a while (OffsetCommit answered with
    /// REQUEST_TIMED_OUT) is retried by itself: the batch's effects are durable,
    /// so it is not run again (which would find duplicates, behind a backoff that
    /// grows with each failure). No bound on time: on a loaded machine the group
    /// join alone varies by seconds; a run of the batch again shows as duplicates.
    @Test func aFailedOffsetCommitIsRetriedWithoutRunningTheBatchAgain() async throws {
        let fixture = try await PipelineFixture.create()
        let sku = fixture.sku("S")
        let events = (1...3).map { WMSEvents.receiving("\(fixture.id)-\($0)", at: "FC1", [(sku, 1)]) }
        let outcome = try await blocking {
            let cluster = try KafkaMockCluster(brokers: 1, logger: PipelineFixture.logger)
            var f = fixture
            f.kafkaBrokers = cluster.bootstrapServers
            for topic in [f.topics[0], f.deadLetterTopic] { try cluster.createTopic(topic, partitions: 1) }
            try f.produce(events, partition: 0)
            // REQUEST_TIMED_OUT (7) for the next three OffsetCommit requests (ApiKey 8).
            cluster.pushRequestErrors(apiKey: 8, errors: [7, 7, 7])
            let report = try f.run(untilSeen: events.count, timeout: .seconds(30))
            return (report, try f.postgresLevels())
        }
        let (report, levels) = outcome
        #expect(report.appliedCount == 3)
        #expect(report.duplicates == 0, "the batch ran again")
        #expect(levels["\(sku)@FC1"]?.first == 3)
        try await fixture.schema.drop()
    }

    /// The broker faults of issue 11, each through a mock cluster of the test's
    /// own, while a stream with an allocation and dead letters flows (batches of
    /// 10, so that the worker is mid-stream when a fault comes).
    enum BrokerFault: String, CaseIterable, CustomTestStringConvertible {
        /// Produce (ApiKey 0) answered NOT_LEADER_OR_FOLLOWER, then REQUEST_TIMED_OUT:
        /// the outbox's and the dead letters' publish.
        case produceErrors
        /// Fetch (1) answered NOT_LEADER_OR_FOLLOWER three times.
        case fetchErrors
        /// JoinGroup (11) answered COORDINATOR_NOT_AVAILABLE, then COORDINATOR_LOAD_IN_PROGRESS.
        case joinGroupErrors
        /// SyncGroup (14) answered REBALANCE_IN_PROGRESS twice.
        case syncGroupErrors
        /// Heartbeat (12) answered REBALANCE_IN_PROGRESS, then NOT_COORDINATOR: the member joins again.
        case heartbeatErrors
        /// The group's coordinator moves to another broker mid-stream.
        case coordinatorMoves
        /// The only broker down for 8 s mid-stream, past the 6 s session timeout.
        case brokerDownPastTheSessionTimeout

        var testDescription: String { rawValue }

        /// Errors pushed before the worker starts: (ApiKey, codes).
        var requestErrors: [(Int16, [Int32])] {
            switch self {
            case .produceErrors: [(0, [6, 6, 7])]
            case .fetchErrors: [(1, [6, 6, 6])]
            case .joinGroupErrors: [(11, [15, 14])]
            case .syncGroupErrors: [(14, [27, 27])]
            case .heartbeatErrors: [(12, [27, 16])]
            case .coordinatorMoves, .brokerDownPastTheSessionTimeout: []
            }
        }
    }

    /// Whatever the fault, every event's effects land exactly once, every outbound
    /// message is there under one messageId, and the worker ends with every
    /// offset committed, soon after the fault's end.
    @Test(arguments: BrokerFault.allCases)
    func theWorkerRidesThroughABrokerFault(_ fault: BrokerFault) async throws {
        var created = try await PipelineFixture.create()
        created.maxBatchSize = 10
        let fixture = created
        let sku = fixture.sku("S")
        let good = (1...60).map { WMSEvents.receiving("\(fixture.id)-\($0)", at: "FC1", [(sku, 1)]) }
        let order = OrderEvents.confirmed("\(fixture.id)-order", order: "O-1", [("1", sku, "FC1", 5, nil)])
        let bad = (1...3).map { #"{"eventId":"\#(fixture.id)-bad-\#($0)","eventType":"RECEIVING""# }
        let stream = Array(good[..<30]) + [bad[0], order] + Array(good[30...]) + Array(bad[1...])
        let outcome = try await blocking {
            let cluster = try KafkaMockCluster(brokers: fault == .coordinatorMoves ? 3 : 1, logger: PipelineFixture.logger)
            var f = fixture
            f.kafkaBrokers = cluster.bootstrapServers
            for topic in [f.topics[0], f.deadLetterTopic, f.allocationsTopic, f.alertsTopic] { try cluster.createTopic(topic, partitions: 1) }
            try f.produce(stream, partition: 0)
            for (apiKey, errors) in fault.requestErrors { cluster.pushRequestErrors(apiKey: apiKey, errors: errors) }
            let faultEnded = FaultClock()
            if !fault.requestErrors.isEmpty { faultEnded.mark() }
            let mockCluster = UncheckedBox(cluster)
            let report = try f.run { totals in
                let seen = totals.appliedCount + totals.duplicates + totals.deadLetterCount
                if seen >= 20, !faultEnded.isMarked {
                    switch fault {
                    case .coordinatorMoves:
                        try? mockCluster.value.setCoordinator(ofGroup: f.group, to: 2)
                        faultEnded.mark()
                    case .brokerDownPastTheSessionTimeout:
                        ChildProcesses.noneStarting { try? mockCluster.value.setBroker(1, up: false) }
                        faultEnded.mark(after: .seconds(8)) { ChildProcesses.noneStarting { try? mockCluster.value.setBroker(1, up: true) } }
                    default: break
                    }
                }
                return seen >= stream.count || faultEnded.elapsed > .seconds(60)
            }
            let recovered = faultEnded.elapsed
            // A worker of the same group started now finds nothing left to read: every offset was committed.
            let leftOver = try f.run(untilSeen: 1, timeout: .seconds(8))
            let allocations = try f.readAll(f.allocationsTopic, expecting: 1, timeout: .seconds(20))
            let deadLetters = try f.readAll(f.deadLetterTopic, expecting: bad.count, timeout: .seconds(20))
            return (report, recovered, leftOver, allocations.map { String(decoding: $0.value, as: UTF8.self) },
                    deadLetters.map { String(decoding: $0.value, as: UTF8.self) }, try f.postgresLevels(), try f.redisLevels(["\(sku)@FC1"]))
        }
        let (report, recovered, leftOver, allocations, deadLetters, levels, redis) = outcome
        // Only a member the group dropped (its session timed out) runs a batch
        // again: its offsets can no longer be committed. The batch's effects are
        // durable, so it finds them applied (duplicates, counted as such).
        if fault == .brokerDownPastTheSessionTimeout {
            #expect(report.appliedCount + report.duplicates >= good.count + 1, "applied \(report.appliedCount), duplicates \(report.duplicates)")
        } else {
            #expect(report.appliedCount == good.count + 1 && report.duplicates == 0,
                    "applied \(report.appliedCount), duplicates \(report.duplicates): a batch ran again")
        }
        #expect(report.deadLetterCount == bad.count)
        #expect(levels["\(sku)@FC1"] == [60, 5, 0, 0, 0, 0, 0], "effects lost or doubled")
        #expect(redis["\(sku)@FC1"] == [60, 5, 0, 0, 0, 0, 0, 55])
        #expect(Set(allocations.compactMap { try? JSONValue.parse(Array($0.utf8))["messageId"]?.stringValue }).count == 1, "\(allocations)")
        #expect(Set(deadLetters) == Set(bad), "\(deadLetters)")
        #expect(leftOver.messages == 0, "offsets left uncommitted: \(leftOver.messages) messages read again")
        #expect(recovered < .seconds(30), "not back within seconds of the fault's end: \(recovered)")
        try await fixture.schema.drop()
    }
}

/// When a fault ended (for faults injected up front: when the worker started).
final class FaultClock: @unchecked Sendable {
    private let lock = NSLock()
    private var endedAt: ContinuousClock.Instant?

    var isMarked: Bool { lock.withLock { endedAt != nil } }
    /// Since the fault's end (zero before it).
    var elapsed: Duration { lock.withLock { endedAt.map { max(.zero, ContinuousClock.now - $0) } ?? .zero } }

    func mark() { lock.withLock { endedAt = ContinuousClock.now } }

    /// Ends the fault after `delay`, running `end` then, on a thread of its own.
    func mark(after delay: Duration, _ end: @escaping @Sendable () -> Void) {
        lock.withLock { endedAt = ContinuousClock.now + delay }
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: delay / .seconds(1))
            end()
        }
    }
}
