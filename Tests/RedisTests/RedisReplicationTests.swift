import Redis
import Testing

/// What a primary holds after a failover, from `INFO replication` (no server needed).
@Suite struct RedisReplicationTests {
    static let node = RedisAddress(host: "127.0.0.1", port: 6401)

    /// A replica promoted at offset 1,000 of the history `aaa…`, which has taken
    /// writes of its own since, up to 1,500.
    static let promoted = """
        # Replication\r
        role:master\r
        connected_slaves:0\r
        master_failover_state:no-failover\r
        master_replid:\(String(repeating: "b", count: 40))\r
        master_replid2:\(String(repeating: "a", count: 40))\r
        master_repl_offset:1500\r
        second_repl_offset:1001\r
        repl_backlog_active:1\r

        """

    @Test func aPromotedReplicaHoldsItsOwnHistoryAndThePreviousOneUpToItsPromotion() throws {
        let node = try RedisReplication(info: Self.promoted, node: Self.node)
        let own = String(repeating: "b", count: 40)
        let previous = String(repeating: "a", count: 40)
        #expect(node.isPrimary && node.replid == own && node.offset == 1500)
        #expect(node.previousReplid == previous && node.previousEnd == 1001)
        #expect(node.holds(replid: own, offset: 1500))
        #expect(!node.holds(replid: own, offset: 1501), "further than its history runs")
        #expect(node.holds(replid: previous, offset: 1000))
        #expect(!node.holds(replid: previous, offset: 1001), "written on the old primary after the replica last heard from it")
        #expect(!node.holds(replid: String(repeating: "c", count: 40), offset: 1), "a history it never had")
    }

    @Test func aPrimaryThatNeverFailedOverHasNoPreviousHistory() throws {
        let info = """
            role:master
            master_replid:\(String(repeating: "d", count: 40))
            master_replid2:0000000000000000000000000000000000000000
            master_repl_offset:0
            second_repl_offset:-1
            """
        let node = try RedisReplication(info: info, node: Self.node)
        #expect(node.previousReplid == nil && node.offset == 0)
        #expect(!node.holds(replid: "0000000000000000000000000000000000000000", offset: -2))
    }

    @Test func aReplicaIsNotAPrimaryAndAnAnswerWithoutItsFieldsIsRefused() throws {
        let replica = try RedisReplication(info: "role:slave\nmaster_replid:e\nmaster_repl_offset:7\n", node: Self.node)
        #expect(!replica.isPrimary)
        #expect(throws: RedisError.self) { try RedisReplication(info: "role:master\n", node: Self.node) }
    }
}
