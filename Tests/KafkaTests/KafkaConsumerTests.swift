import Foundation
import Kafka
import Testing
import TestSupport

@Suite struct KafkaConsumerTests {
    @Test func committedOffsetIsWhereTheNextMemberOfTheGroupStarts() async throws {
        let result = try await blocking {
            let topic = try KafkaFixtures.topicWithMessages(3)
            let group = TestEnvironment.uniqueName("group")
            let first = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: group), logger: KafkaFixtures.logger)
            try first.subscribe([topic])
            let read = try first.poll(count: 3)
            // Done with the first two only: commit the offset after the second.
            try first.commit([read[1].topicPartition: read[1].nextOffset])
            let committed = try first.committed([read[1].topicPartition], timeout: .seconds(10))
            try first.close()

            let second = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: group), logger: KafkaFixtures.logger)
            try second.subscribe([topic])
            let resumed = try second.poll(count: 1)
            try second.close()
            return (read.map { String(decoding: $0.value, as: UTF8.self) }, read.map(\.offset), committed.first?.value,
                    resumed.map { String(decoding: $0.value, as: UTF8.self) }, read.first?.key)
        }
        #expect(result.0 == ["v0", "v1", "v2"])
        #expect(result.1 == [0, 1, 2])
        #expect(result.2 == 2)
        #expect(result.3 == ["v2"])
        #expect(result.4 == Array("k0".utf8))
    }

    @Test func storedOffsetsAreCommittedOnlyWhenAsked() async throws {
        let result = try await blocking {
            let topic = try KafkaFixtures.topicWithMessages(4)
            let group = TestEnvironment.uniqueName("group")
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: group), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            let read = try consumer.poll(count: 4)
            let partition = read[0].topicPartition
            try consumer.store([partition: read[3].nextOffset])
            let beforeCommit = try consumer.committed([partition], timeout: .seconds(10))[partition]
            try consumer.commit()
            let afterCommit = try consumer.committed([partition], timeout: .seconds(10))[partition]
            try consumer.close()
            return (beforeCommit, afterCommit)
        }
        #expect(result.0 == KafkaOffset.invalid)
        #expect(result.1 == 4)
    }

    @Test func aPollStopsAtItsByteBudget() async throws {
        let sizes = try await blocking {
            let topic = TestEnvironment.uniqueName("bytes")
            try KafkaFixtures.producer().deliver((0..<10).map {
                KafkaOutboundMessage(topic: topic, partition: 0, value: Array(repeating: UInt8($0), count: 1000))
            })
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: TestEnvironment.uniqueName("group")), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            var sizes: [Int] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while sizes.reduce(0, +) < 10, ContinuousClock.now < deadline {
                let batch = try consumer.poll(maxMessages: 100, maxBytes: 2500, timeout: .milliseconds(200))
                if !batch.isEmpty { sizes.append(batch.count) }
            }
            try consumer.close()
            return sizes
        }
        // 2,500 bytes: two messages stay under it, the third reaches it.
        #expect(sizes.reduce(0, +) == 10)
        #expect(sizes.allSatisfy { $0 <= 3 })
    }

    @Test func seekingBackRedelivers() async throws {
        let offsets = try await blocking {
            let topic = try KafkaFixtures.topicWithMessages(5)
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: TestEnvironment.uniqueName("group")), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            let first = try consumer.poll(count: 5)
            try consumer.seek([first[0].topicPartition: 1], timeout: .seconds(30))
            let again = try consumer.poll(count: 4)
            try consumer.close()
            return (first.map(\.offset), again.map(\.offset))
        }
        #expect(offsets.0 == [0, 1, 2, 3, 4])
        #expect(offsets.1 == [1, 2, 3, 4])
    }

    @Test func rebalanceHandsPartitionsOverAndBack() async throws {
        let topic = try await blocking { try KafkaFixtures.topicWithMessages(1) }
        let group = TestEnvironment.uniqueName("group")
        let all = Set((0..<4).map { KafkaTopicPartition(topic: topic, partition: Int32($0)) })
        let (firstReady, firstShared, secondReady, firstDone) = (Gate(), Gate(), Gate(), Gate())

        // The first member holds every partition, keeps polling while the second
        // joins, and must give some up; when the second leaves it gets them back.
        async let first = blocking("first") { () -> (Bool, Set<KafkaTopicPartition>, Bool, [KafkaRebalanceEvent]) in
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: group), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            let ownedAll = try consumer.poll(until: { $0.assignment == all })
            firstReady.open()
            let shared = try consumer.poll(until: { !$0.assignment.isEmpty && $0.assignment.count < 4 })
            let sharedAssignment = consumer.assignment
            firstShared.open()
            // Polling on while the second works: a member that stops polling cannot
            // take part in the next rebalance and is dropped from the group.
            _ = try consumer.poll(until: { _ in secondReady.isOpen }, timeout: .seconds(60))
            let regained = try consumer.poll(until: { $0.assignment == all })
            let events = consumer.takeRebalanceEvents()
            try consumer.close()
            firstDone.open()
            return (ownedAll && shared, sharedAssignment, regained, events)
        }
        async let second = blocking("second") { () -> Set<KafkaTopicPartition> in
            firstReady.wait()
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: group), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            _ = try consumer.poll(until: { !$0.assignment.isEmpty && $0.assignment.count < 4 })
            let assignment = consumer.assignment
            // Not before the first has seen the partitions shared: leaving at once
            // can hand them back within one of its polls, before it looks.
            _ = try consumer.poll(until: { _ in firstShared.isOpen }, timeout: .seconds(60))
            // Leaving the group hands the partitions back at once, not after the session timeout.
            try consumer.close()
            secondReady.open()
            return assignment
        }
        let (firstResult, secondAssignment) = try await (first, second)
        _ = firstDone
        #expect(firstResult.0)
        #expect(!secondAssignment.isEmpty)
        #expect(firstResult.1.isDisjoint(with: secondAssignment))
        #expect(firstResult.1.union(secondAssignment) == all)
        #expect(firstResult.2)
        #expect(firstResult.3.contains { if case .revoked = $0 { true } else { false } })
    }

    @Test func messagesOfManyPartitionsArriveInOrderPerPartition() async throws {
        let result = try await blocking {
            let topic = TestEnvironment.uniqueName("ordered")
            let producer = try KafkaFixtures.producer()
            let outbound = (0..<2000).map { KafkaOutboundMessage(topic: topic, key: Array("key-\($0 % 37)".utf8), value: Array("\($0)".utf8)) }
            let deliveries = try producer.deliver(outbound)
            let consumer = try KafkaConsumer(config: KafkaFixtures.consumerConfig(group: TestEnvironment.uniqueName("group")), logger: KafkaFixtures.logger)
            try consumer.subscribe([topic])
            let read = try consumer.poll(count: 2000)
            try consumer.close()
            return (deliveries, read)
        }
        let (deliveries, read) = result
        #expect(Set(deliveries.map { "\($0.partition)/\($0.offset)" }).count == 2000)
        #expect(read.count == 2000)
        for partition in Set(read.map(\.partition)) {
            let offsets = read.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == offsets.sorted())
        }
        #expect(Set(read.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<2000).map(String.init)))
    }
}

/// A one-shot latch between test threads.
final class Gate: @unchecked Sendable {
    private let condition = NSCondition()
    private var opened = false

    func open() {
        condition.lock()
        opened = true
        condition.broadcast()
        condition.unlock()
    }

    var isOpen: Bool {
        condition.lock()
        defer { condition.unlock() }
        return opened
    }

    func wait(timeout: TimeInterval = 60) {
        condition.lock()
        let deadline = Date().addingTimeInterval(timeout)
        while !opened, condition.wait(until: deadline) {}
        condition.unlock()
    }
}
