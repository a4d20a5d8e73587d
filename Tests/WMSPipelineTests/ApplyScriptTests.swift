import Foundation
import Redis
import Testing
import TestSupport
@testable import WMSPipeline

/// `apply_event.lua` takes the events of one SKU in one call: each bucket read
/// and written once, the events in order, each applied whole or not at all.
@Suite struct ApplyScriptTests {
    /// Keys of one event of SKU `sku` at FC1: mark, live hash, queue, sequence, then `extra`.
    static func keys(_ sku: String, event: String, extra: [String] = []) -> [any RedisArgument] {
        [RedisKeys.applied(sku: sku, eventId: event), RedisKeys.live(sku: sku, location: "FC1"),
         RedisKeys.backorders(sku: sku, location: "FC1"), RedisKeys.backorderSequence(sku: sku)] + extra
    }

    /// KEYS[1] and ARGV[3] of a call: the state sentinel of a deployment of the
    /// test's own, and the token it must hold; `sentinel(redis:sku:)` writes it.
    static func sentinelKey(_ sku: String) -> String { RedisKeys.stateSentinel(deployment: sku) }
    static let token = "state-1"
    static func writeSentinel(_ redis: RedisClient, _ sku: String) throws {
        _ = try redis.send("SET", sentinelKey(sku), token)
        // The one a `HotStore` of deployment `sku` checks (another, on a cluster).
        _ = try redis.send("SET", RedisStateSentinel(deployment: sku, token: token).key(nextTo: RedisKeys.live(sku: sku, location: ""), in: redis), token)
    }

    /// ARGV before the events' arguments (no gate: the SKU's only call).
    static func header(_ mode: String) -> [any RedisArgument] { [1_000, mode, token, 0] }

    static func operations(_ sku: String, event: String, onHand: Int, confirm: String = "{}") -> String {
        #"{"policy":"strict","eventId":"\#(event)","lineKeyPrefix":"\#(RedisKeys.orderLinePrefix(sku: sku))","seq":4,"#
            + #""locations":[{"live":2,"queue":3,"d":[\#(onHand),0,0,0,0,0,0],"fill":true}],"picks":{},"confirm":\#(confirm),"cancel":{}}"#
    }

    @Test func eventsOfOneSKUApplyInOrderInOneCall() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let (replies, live) = try await blocking {
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            try Self.writeSentinel(redis, sku)
            var keys: [any RedisArgument] = [Self.sentinelKey(sku)]
            var arguments: [any RedisArgument] = Self.header("apply")
            for (number, onHand) in [(1, 10), (2, -3), (3, 5)] {
                arguments += [keys.count, "d\(number)", Self.operations(sku, event: "e\(number)", onHand: onHand)]
                keys += Self.keys(sku, event: "e\(number)")
            }
            let replies = try redis.evaluateAll([RedisScript.Call(script: HotStore.applyScript, keys: keys, arguments: arguments)])[0].get()
            return (replies.array?.compactMap(\.string) ?? [],
                    try redis.send("HMGET", RedisKeys.live(sku: sku, location: "FC1"), "onHand", "available").array?.compactMap(\.string))
        }
        #expect(replies.enumerated().filter { $0.offset % 2 == 0 }.map(\.element) == ["applied", "applied", "applied"])
        // Each event saw what the ones before it left.
        let results = replies.enumerated().filter { $0.offset % 2 == 1 }.compactMap { HotStore.parseResult(Array($0.element.utf8)) }
        #expect(results.map { [$0.locations[0].onHandBefore, $0.locations[0].onHandAfter] } == [[0, 10], [10, 7], [7, 12]])
        #expect(live == ["12", "12"])
    }

    /// The second event fails in the script after its quantities moved (a
    /// confirmation line without a quantity: nothing the worker sends, so an
    /// error of the script itself). The buckets keep the first event's change
    /// only, and the third event is not run.
    @Test func anEventTheScriptFailsOnHalfWayLeavesTheBucketsAsTheEventsBeforeIt() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let line = RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1")
        let (statuses, live, marks) = try await blocking {
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            try Self.writeSentinel(redis, sku)
            var keys: [any RedisArgument] = [Self.sentinelKey(sku)] + Self.keys(sku, event: "e1")
            var arguments: [any RedisArgument] = Self.header("apply") + [1, "d1", Self.operations(sku, event: "e1", onHand: 10)]
            arguments += [keys.count, "d2", Self.operations(sku, event: "e2", onHand: 5,
                                                             confirm: #"[{"loc":1,"line":5,"order":"O","lineId":"1","cancelled":false}]"#)]
            keys += Self.keys(sku, event: "e2", extra: [line])
            arguments += [keys.count, "d3", Self.operations(sku, event: "e3", onHand: 1)]
            keys += Self.keys(sku, event: "e3")
            let replies = try redis.evaluateAll([RedisScript.Call(script: HotStore.applyScript, keys: keys, arguments: arguments)])[0].get()
            let marks = try ["e1", "e2", "e3"].map { try redis.send("EXISTS", RedisKeys.applied(sku: sku, eventId: $0)).int ?? -1 }
            return (replies.array?.enumerated().filter { $0.offset % 2 == 0 }.compactMap(\.element.string) ?? [],
                    try redis.send("HMGET", RedisKeys.live(sku: sku, location: "FC1"), "onHand", "available").array?.compactMap(\.string),
                    marks)
        }
        #expect(statuses == ["applied", "error", "skipped"])
        #expect(live == ["10", "10"])
        #expect(marks == [1, 0, 0])
    }

    /// A Redis without the state the worker builds on (its sentinel gone, or
    /// another token) is not written: the call says so and changes nothing.
    @Test(arguments: [nil, "state-0"])
    func aRedisWithoutTheStateIsNotWritten(_ sentinel: String?) async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let (reply, exists) = try await blocking {
            let redis = try RedisClient(url: try RedisURL(TestEnvironment.redisURL))
            if let sentinel { _ = try redis.send("SET", Self.sentinelKey(sku), sentinel) }
            let keys: [any RedisArgument] = [Self.sentinelKey(sku)] + Self.keys(sku, event: "e1")
            let arguments: [any RedisArgument] = Self.header("apply") + [1, "d1", Self.operations(sku, event: "e1", onHand: 10)]
            let reply = try redis.evaluateAll([RedisScript.Call(script: HotStore.applyScript, keys: keys, arguments: arguments)])[0].get()
            return (reply.array?.compactMap(\.string) ?? [],
                    try redis.send("EXISTS", RedisKeys.applied(sku: sku, eventId: "e1"), RedisKeys.live(sku: sku, location: "FC1")).int)
        }
        #expect(reply == ["stale", sentinel ?? ""])
        #expect(exists == 0)
    }
}
