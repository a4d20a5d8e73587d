import Kafka
import Testing
import WMSOperations

/// Where a replay starts a partition, from the broker's answers: the part of
/// `replay --from-time` the dev broker cannot exercise (it answers "none" to
/// every time lookup), and the rule that a replay never skips.
@Suite struct ReplayMoveTests {
    let partition = KafkaTopicPartition(topic: "wms.receiving", partition: 2)

    func move(_ start: ReplayStart, low: Int64 = 0, high: Int64 = 100, committed: Int64? = 80, firstAtTime: Int64? = nil) -> ReplayMove {
        GroupOffsets.move(partition, start: start, low: low, high: high, committed: committed, firstAtTime: firstAtTime)
    }

    @Test func aTimeStartsAtTheFirstMessageAtOrAfterIt() {
        let found = move(.time(milliseconds: 1), firstAtTime: 42)
        #expect(found.target == 42 && found.messagesToRead == 58 && !found.kept)
        // No message at or after the time: nothing to read again, the group stays.
        let none = move(.time(milliseconds: 1), firstAtTime: -1)
        #expect(none.target == 80 && none.kept)
        #expect(none.description == "wms.receiving[2]: from offset 80 (committed was 80, 20 messages to read; the time or offset asked for is past it, so the group stays there and skips nothing)")
    }

    @Test func offsetsAreClampedToWhatThePartitionKeeps() {
        #expect(move(.offset(3), low: 10).target == 10)
        #expect(move(.beginning, low: 10).target == 10)
        #expect(move(.offset(50)).target == 50)
    }

    @Test func aReplayNeverMovesPastTheGroupsPosition() {
        let past = move(.offset(95))
        #expect(past.target == 80 && past.kept && past.messagesToRead == 20)
        // Nothing committed: the group would read from the first message kept.
        let fresh = move(.offset(50), low: 5, committed: nil)
        #expect(fresh.target == 5 && fresh.kept)
        #expect(move(.beginning, low: 5, committed: nil).description == "wms.receiving[2]: from offset 5 (committed was none, 95 messages to read)")
    }
}
