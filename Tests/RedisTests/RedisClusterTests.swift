import Foundation
import Redis
import Testing
import TestSupport

@Suite struct RedisClusterSlotTests {
    /// The examples of the Redis Cluster specification.
    @Test func slotsFollowTheSpecification() {
        #expect(RedisClusterSlot.of(key: "123456789") == 0x31C3 % 16384)
        #expect(RedisClusterSlot.of(key: "foo") == 12182)
        #expect(RedisClusterSlot.of(key: "{user1000}.following") == RedisClusterSlot.of(key: "{user1000}.followers"))
        #expect(RedisClusterSlot.of(key: "foo{}{bar}") == RedisClusterSlot.of(key: "foo{}{bar}".utf8))
        #expect(RedisClusterSlot.of(key: "foo{}{bar}") != RedisClusterSlot.of(key: "bar"))
        #expect(RedisClusterSlot.of(key: "foo{{bar}}zap") == RedisClusterSlot.of(key: "{bar"))
        #expect(RedisClusterSlot.of(key: "foo{bar}{zap}") == RedisClusterSlot.of(key: "bar"))
        #expect(RedisClusterSlot.of(key: "inventory:live:{SKU-1}:FC1") == RedisClusterSlot.of(key: "SKU-1"))
    }

    @Test func everySlotHasATagThatHashesToIt() {
        let tags = RedisClusterSlot.tags
        #expect(tags.count == 16384)
        #expect(tags.indices.allSatisfy { RedisClusterSlot.of(key: "inventory:state:{\(tags[$0])}:x") == $0 })
    }
}

/// The cluster client against the local Redis Cluster (3 primaries, 3 replicas).
@Suite struct RedisClusterTests {
    let url = try! RedisURL(TestEnvironment.redisClusterURL)

    @Test(.enabled(if: !TestEnvironment.redisIsCluster)) func aSingleRedisIsNotACluster() async throws {
        let single = try RedisURL(TestEnvironment.redisURL)
        let (isCluster, pong) = try await blocking {
            let client = try RedisClient(url: single)
            return (client.isCluster, try client.send("PING"))
        }
        #expect(!isCluster)
        #expect(pong == .status("PONG"))
    }

    @Test func commandsGoToTheNodeOfTheirSlot() async throws {
        let url = self.url
        let prefix = TestEnvironment.uniqueName("wms:test:route")
        let outcome = try await blocking {
            let client = try RedisClient(url: url)
            let keys = (0..<600).map { "\(prefix):\($0)" }
            let written = try client.pipeline(keys.map { RedisCommand("SET", $0, $0) })
            let read = try client.pipeline(keys.map { RedisCommand("GET", $0) })
            // Each primary holds exactly the keys of its slots, as the server computes them.
            var held = 0
            var misplaced: [String] = []
            for primary in try client.primaries() {
                // A node answers MOVED for a key of another's slot.
                let exists = try primary.pipeline(keys.map { RedisCommand("EXISTS", $0) })
                for (key, reply) in zip(keys, exists) where reply == .integer(1) {
                    held += 1
                    let slot = try primary.send("CLUSTER", "KEYSLOT", key).int
                    if slot != Int64(RedisClusterSlot.of(key: key)) { misplaced.append(key) }
                }
            }
            let deleted = try client.unlink(keys)
            return (client.isCluster, try client.primaries().count, written.allSatisfy { $0 == .status("OK") },
                    read == keys.map { .bulk(Array($0.utf8)) }, held, misplaced, deleted)
        }
        #expect(outcome.0)
        #expect(outcome.1 == 3)
        #expect(outcome.2)
        #expect(outcome.3)
        #expect(outcome.4 == 600)
        #expect(outcome.5.isEmpty)
        #expect(outcome.6 == 600)
    }

    @Test func anyOneSeedThatAnswersIsEnough() async throws {
        var url = self.url
        // A seed nobody listens on comes first.
        url.moreSeeds = url.seeds
        url.host = "127.0.0.1"
        url.port = 9
        let url2 = url
        let pong = try await blocking { try RedisClient(url: url2, connectTimeout: .seconds(1)).send("PING") }
        #expect(pong == .status("PONG"))
    }

    @Test func scriptsRunOnEveryNodeAndAreLoadedAgainWhereFlushed() async throws {
        let url = self.url
        let prefix = TestEnvironment.uniqueName("wms:test:script")
        let script = RedisScript(name: "incr_by_\(prefix.suffix(8))", source: "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        let (first, second) = try await blocking {
            let client = try RedisClient(url: url)
            let keys = (0..<60).map { "\(prefix):\($0)" }
            let calls = keys.map { RedisScript.Call(script: script, keys: [$0], arguments: [2]) }
            let first = try client.evaluateAll(calls)
            for primary in try client.primaries() { try primary.send("SCRIPT", "FLUSH") }
            let second = try client.evaluateAll(calls)
            try client.unlink(keys)
            return (first, second)
        }
        #expect(first == Array(repeating: .integer(2), count: 60))
        #expect(second == Array(repeating: .integer(4), count: 60))
    }

    /// A node drops the connection in the middle of a pipeline that spans
    /// every primary: the call fails (retriable), and no other node's
    /// connection is left holding replies nobody read, which the next call
    /// would take for its own (found by the kill soak on the cluster: a GET of
    /// the state sentinel answered with a claim's digest).
    @Test func aNodeDroppingMidPipelineLeavesNoRepliesUnread() async throws {
        let url = self.url
        let prefix = TestEnvironment.uniqueName("wms:test:drop")
        let outcome = try await blocking {
            let client = try RedisClient(url: url)
            let nodes = try client.primaries()
            // A key on each primary, in the order the pipeline writes to them.
            let admin = try ClusterAdmin(url: url)
            var keys: [String] = []
            for node in nodes {
                let address = RedisAddress(host: node.url.host, port: node.url.port)
                var candidate = 0
                while try admin.primary(of: RedisClusterSlot.of(key: "\(prefix):\(candidate)")) != address { candidate += 1 }
                keys.append("\(prefix):\(candidate)")
            }
            _ = try client.pipeline(keys.map { RedisCommand("SET", $0, "before") })
            // The server closes the client's connection to the second primary.
            let victim = try nodes[1].send("CLIENT", "ID").int!
            try RedisConnection(url: nodes[1].url).send("CLIENT", "KILL", "ID", victim)
            var failure: RedisError?
            do { _ = try client.pipeline(keys.map { RedisCommand("GET", $0) }) } catch { failure = error as? RedisError }
            let after = try client.pipeline(keys.map { RedisCommand("SET", $0, "after") })
            let read = try client.pipeline(keys.map { RedisCommand("GET", $0) })
            try client.unlink(keys)
            return (failure, after, read)
        }
        #expect(outcome.0?.isRetriable == true)
        #expect(outcome.1 == [RESPValue](repeating: .status("OK"), count: 3))
        #expect(outcome.2 == [RESPValue](repeating: .bulk(Array("after".utf8)), count: 3))
    }

    /// A slot moved by hand, step by step: while it migrates, a key already
    /// moved is answered ASK (and found on the target with ASKING), one not yet
    /// moved is served by the source; once moved, MOVED updates the map.
    @Test func followsAskWhileASlotMigratesAndMovedAfter() async throws {
        let url = self.url
        let tag = TestEnvironment.uniqueName("slot")
        let outcome = try await blocking {
            let client = try RedisClient(url: url)
            let admin = try ClusterAdmin(url: url)
            let slot = RedisClusterSlot.of(key: tag)
            let early = "wms:test:{\(tag)}:early"
            let late = "wms:test:{\(tag)}:late"
            _ = try client.pipeline([RedisCommand("SET", early, "e"), RedisCommand("SET", late, "l")])
            let source = try admin.primary(of: slot)
            let target = try admin.primaries().first { $0 != source }!
            try admin.beginMigration(slot: slot, from: source, to: target)
            try admin.migrate(key: early, from: source, to: target)
            // `early` is on the target now (ASK), `late` still on the source.
            let during = try client.pipeline([RedisCommand("GET", early), RedisCommand("GET", late), RedisCommand("INCR", "wms:test:{\(tag)}:new")])
            // Every key of the slot moves, other tests' too (a slot moved with keys left
            // behind loses them), as `redis-cli --cluster reshard` does.
            try admin.migrateAll(slot: slot, from: source, to: target)
            try admin.finishMigration(slot: slot, to: target)
            let after = try client.pipeline([RedisCommand("GET", early), RedisCommand("GET", late)])
            // And back, so the layout is as the other tests expect.
            try admin.beginMigration(slot: slot, from: target, to: source)
            try admin.migrateAll(slot: slot, from: target, to: source)
            try admin.finishMigration(slot: slot, to: source)
            let back = try client.send("GET", late)
            try client.unlink([early, late, "wms:test:{\(tag)}:new"])
            return (during, after, back)
        }
        #expect(outcome.0 == [.bulk(Array("e".utf8)), .bulk(Array("l".utf8)), .integer(1)])
        #expect(outcome.1 == [.bulk(Array("e".utf8)), .bulk(Array("l".utf8))])
        #expect(outcome.2 == .bulk(Array("l".utf8)))
    }
}

/// Moves slots by hand, as `redis-cli --cluster reshard` does, one step at a time.
struct ClusterAdmin {
    let url: RedisURL
    let client: RedisClient

    init(url: RedisURL) throws {
        self.url = url
        client = try RedisClient(url: url)
    }

    func primaries() throws -> [RedisAddress] {
        try client.primaries().map { RedisAddress(host: $0.url.host, port: $0.url.port) }
    }

    func primary(of slot: Int) throws -> RedisAddress {
        for connection in try client.primaries() {
            let ranges = try connection.send("CLUSTER", "SLOTS").array ?? []
            for range in ranges {
                guard let parts = range.array, let first = parts[0].int, let last = parts[1].int, (first...last).contains(Int64(slot)),
                      let node = parts[2].array, let port = node[1].int else { continue }
                return RedisAddress(host: url.host, port: Int(port))
            }
        }
        throw RedisError.unexpectedReply("no primary for slot \(slot)")
    }

    func node(_ address: RedisAddress) throws -> RedisConnection { try RedisConnection(url: url.at(address)) }

    func id(_ address: RedisAddress) throws -> String { try node(address).send("CLUSTER", "MYID").string! }

    func beginMigration(slot: Int, from source: RedisAddress, to target: RedisAddress) throws {
        try node(target).send("CLUSTER", "SETSLOT", slot, "IMPORTING", try id(source))
        try node(source).send("CLUSTER", "SETSLOT", slot, "MIGRATING", try id(target))
    }

    func migrate(key: String, from source: RedisAddress, to target: RedisAddress) throws {
        var arguments: [any RedisArgument] = ["MIGRATE", target.host, target.port, key, 0, 5000]
        if let password = url.password { arguments += ["AUTH", password] }
        try node(source).send(RedisCommand(arguments))
    }

    /// Moves every key the source holds in the slot.
    func migrateAll(slot: Int, from source: RedisAddress, to target: RedisAddress) throws {
        let node = try node(source)
        while let keys = try node.send("CLUSTER", "GETKEYSINSLOT", slot, 100).array, !keys.isEmpty {
            var arguments: [any RedisArgument] = ["MIGRATE", target.host, target.port, "", 0, 5000]
            if let password = url.password { arguments += ["AUTH", password] }
            arguments.append("KEYS")
            arguments += keys.compactMap(\.bytes).map { $0 as any RedisArgument }
            try node.send(RedisCommand(arguments))
        }
    }

    /// Tells every primary the slot's new owner.
    func finishMigration(slot: Int, to target: RedisAddress) throws {
        let targetID = try id(target)
        try node(target).send("CLUSTER", "SETSLOT", slot, "NODE", targetID)
        for primary in try primaries() where primary != target {
            try node(primary).send("CLUSTER", "SETSLOT", slot, "NODE", targetID)
        }
    }
}
