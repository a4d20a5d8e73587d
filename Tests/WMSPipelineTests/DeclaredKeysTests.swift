import Foundation
import Redis
import Testing
import TestSupport
import WMSDomain
@testable import WMSPipeline

/// Redis Cluster: every key a script touches is declared in its KEYS. A key a
/// script builds itself is not supported there, and during a slot migration it
/// reads as absent on the source node once it moved: a silent wrong answer.
/// The queued order lines a fill allocates, and the lines a release after a
/// crash expires, are the keys the scripts used to build.
@Suite struct DeclaredKeysTests {
    static let location = "FC1"

    static func redis() throws -> RedisClient { try RedisClient(url: try RedisURL(TestEnvironment.redisURL)) }

    /// A line waiting in the SKU's queue at FC1, as an earlier call left it: its
    /// key is not among the keys of a later event that does not name it.
    static func queueLine(_ redis: RedisClient, sku: String, order: String, quantity: Int, seq: Int, confirmedBy: String) throws {
        try redis.send("ZADD", RedisKeys.backorders(sku: sku, location: location), seq, "\(order)|1|\(quantity)")
        try redis.send("HSET", RedisKeys.orderLine(sku: sku, orderId: order, lineId: "1"), "decision", "backordered",
                       "status", "backordered", "q", quantity, "confirmedBy", confirmedBy, "seq", seq)
        try redis.send("SET", RedisKeys.backorderSequence(sku: sku), seq)
    }

    /// What a call could have written for event `event`: its mark, the live hash,
    /// the queue, and the line of order O (every field, and its expiry).
    static func written(_ redis: RedisClient, sku: String, event: String) throws -> [String] {
        let line = RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1")
        return [
            "mark=\(try redis.send("EXISTS", RedisKeys.applied(sku: sku, eventId: event)).int ?? -1)",
            "live=\(try redis.send("EXISTS", RedisKeys.live(sku: sku, location: location)).int ?? -1)",
            "queue=\(try redis.send("ZRANGE", RedisKeys.backorders(sku: sku, location: location), 0, -1).array?.compactMap(\.string) ?? [])",
            "line=\(try redis.send("HGETALL", line).array?.compactMap(\.string) ?? [])",
            "linePTTL=\(try redis.send("PTTL", line).int ?? 0)",
        ]
    }

    static func hotStore(_ redis: RedisClient, sku: String, grace: Duration = .seconds(300)) -> HotStore {
        let store = HotStore(hot: redis, grace: grace, policy: .strictFIFO)
        store.expectedState = RedisStateSentinel(deployment: sku, token: ApplyScriptTests.token)
        return store
    }

    static func receipt(_ event: String, sku: String, quantity: Int64) -> SKUChange {
        var change = SKUChange(eventId: event, digest: "d-\(event)", sku: sku)
        let at = change.location(location)
        change.locations[at].deltas[.onHand] = quantity
        return change
    }

    static func confirmation(_ event: String, sku: String, order: String, quantity: Int64) -> SKUChange {
        var change = SKUChange(eventId: event, digest: "d-\(event)", sku: sku)
        let at = change.location(location)
        change.confirms = [.init(location: at, orderId: order, lineId: "1", quantity: quantity, reservationId: nil, cancelled: false)]
        return change
    }

    /// The script, called directly: stock grows at a location whose queue holds a
    /// line this call does not declare. It names the key it needs and writes
    /// nothing (before, it built the key and allocated the line).
    @Test func aFillOfALineNotDeclaredAsksForItsKeyAndWritesNothing() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let (reply, before, after) = try await blocking {
            let redis = try Self.redis()
            try ApplyScriptTests.writeSentinel(redis, sku)
            try Self.queueLine(redis, sku: sku, order: "O", quantity: 3, seq: 1, confirmedBy: "e0")
            let before = try Self.written(redis, sku: sku, event: "e1")
            let keys: [any RedisArgument] = [ApplyScriptTests.sentinelKey(sku)] + ApplyScriptTests.keys(sku, event: "e1")
            let arguments = ApplyScriptTests.header("apply") + [1, "d1", ApplyScriptTests.operations(sku, event: "e1", onHand: 10)]
            let reply = try redis.evaluateAll([RedisScript.Call(script: HotStore.applyScript, keys: keys, arguments: arguments)])[0].get()
            return (reply.array?.compactMap(\.string) ?? [], before, try Self.written(redis, sku: sku, event: "e1"))
        }
        #expect(reply.first == "keys", "reply: \(reply)")
        let asked = reply.count == 2 ? (try? JSONValue.parse(Array(reply[1].utf8)))?.arrayValue?.compactMap(\.stringValue) : nil
        #expect(asked == [RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1")])
        #expect(after == before)
    }

    /// A line larger than all the stock there could be does not fit, and under
    /// strict FIFO blocks the lines behind it: no key is asked for, the event
    /// applies in one call and the queue stays as it is.
    @Test func aLineThatCannotFitAsksForNoKey() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let (reply, queue) = try await blocking {
            let redis = try Self.redis()
            try ApplyScriptTests.writeSentinel(redis, sku)
            try Self.queueLine(redis, sku: sku, order: "O", quantity: 5, seq: 1, confirmedBy: "e0")
            try Self.queueLine(redis, sku: sku, order: "P", quantity: 1, seq: 2, confirmedBy: "e0")
            let keys: [any RedisArgument] = [ApplyScriptTests.sentinelKey(sku)] + ApplyScriptTests.keys(sku, event: "e1")
            let arguments = ApplyScriptTests.header("apply") + [1, "d1", ApplyScriptTests.operations(sku, event: "e1", onHand: 4)]
            let reply = try redis.evaluateAll([RedisScript.Call(script: HotStore.applyScript, keys: keys, arguments: arguments)])[0].get()
            return (reply.array?.compactMap(\.string) ?? [],
                    try redis.send("ZRANGE", RedisKeys.backorders(sku: sku, location: Self.location), 0, -1).array?.compactMap(\.string))
        }
        #expect(reply.first == "applied", "reply: \(reply)")
        #expect(reply.count == 2 ? HotStore.parseResult(Array(reply[1].utf8))?.fills == [] : false)
        #expect(queue == ["O|1|5", "P|1|1"])
    }

    /// The same through `HotStore.apply`: it passes the key the script asked
    /// for, and the line is filled as it always was.
    @Test func aLineQueuedByAnEarlierCallIsFilledWhenStockGrows() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let (outcomes, queue, line, live) = try await blocking {
            let redis = try Self.redis()
            try ApplyScriptTests.writeSentinel(redis, sku)
            let store = Self.hotStore(redis, sku: sku)
            let queued = try store.apply([Self.confirmation("o1", sku: sku, order: "O", quantity: 3)], nowMs: 1_000)
            let filled = try store.apply([Self.receipt("r1", sku: sku, quantity: 10)], nowMs: 2_000)
            return (queued + filled,
                    try redis.send("ZCARD", RedisKeys.backorders(sku: sku, location: Self.location)).int,
                    try redis.send("HMGET", RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1"), "status", "allocatedBy").array?.compactMap(\.string),
                    try redis.send("HMGET", RedisKeys.live(sku: sku, location: Self.location), "onHand", "allocated", "available").array?.compactMap(\.string))
        }
        #expect(outcomes.first?.result?.confirms.map(\.decision) == ["backordered"])
        #expect(outcomes.last == .applied(SKUResult(
            locations: [LocationChange(onHandBefore: 0, onHandAfter: 10, availableBefore: 0, availableAfter: 7)],
            fills: [.init(location: 0, orderId: "O", lineId: "1", quantity: 3, confirmedBy: "o1")])))
        #expect(queue == 0)
        #expect(line == ["allocated", "r1"])
        #expect(live == ["10", "3", "7"])
    }

    /// A SKU with more events than one call takes: its calls go in one pipeline.
    /// When the first asks for keys (having written nothing of that event on),
    /// the calls behind it must not run ahead of it: they are sent again after it.
    /// Here, had the confirmation of P run first, it would have taken the 3 units
    /// O waits for.
    @Test func theCallsBehindOneThatAskedForKeysDoNotRunAheadOfIt() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let (outcomes, lines, live) = try await blocking {
            let redis = try Self.redis()
            try ApplyScriptTests.writeSentinel(redis, sku)
            try redis.send("HSET", RedisKeys.live(sku: sku, location: Self.location), "onHand", 3, "available", 3)
            try Self.queueLine(redis, sku: sku, order: "O", quantity: 5, seq: 1, confirmedBy: "e0")
            // 2 arrive (O's 5 fit), then events that change nothing here, then P.
            let fillers = (2...HotStore.maxEventsPerCall).map { SKUChange(eventId: "n\($0)", digest: "d-n\($0)", sku: sku) }
            let changes = [Self.receipt("r1", sku: sku, quantity: 2)] + fillers + [Self.confirmation("oP", sku: sku, order: "P", quantity: 3)]
            let outcomes = try Self.hotStore(redis, sku: sku).apply(changes, nowMs: 1_000)
            let lines = try ["O", "P"].map {
                try redis.send("HGET", RedisKeys.orderLine(sku: sku, orderId: $0, lineId: "1"), "status").string ?? "-"
            }
            return (outcomes, lines, try redis.send("HMGET", RedisKeys.live(sku: sku, location: Self.location), "allocated", "available").array?.compactMap(\.string))
        }
        #expect(outcomes.first?.result?.fills.map(\.orderId) == ["O"])
        #expect(outcomes.last?.result?.confirms.map(\.decision) == ["backordered"])
        #expect(lines == ["allocated", "backordered"])
        #expect(live == ["5", "0"])
    }

    /// `release_keys.lua` touches only its KEYS: it no longer reads the lines an
    /// event filled from its mark and builds their keys.
    @Test func aReleaseTouchesOnlyTheKeysItIsGiven() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let line = RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1")
        let ttl = try await blocking {
            let redis = try Self.redis()
            try Self.fillRecordedInMark(redis, sku: sku, event: "r1")
            let call = RedisScript.Call(script: HotStore.releaseScript, keys: [RedisKeys.applied(sku: sku, eventId: "r1")],
                                        arguments: ["r1", 60_000])
            _ = try redis.evaluateAll([call])[0].get()
            return try redis.send("PTTL", line).int
        }
        #expect(ttl == -1)
    }

    /// What a fill by `event` leaves: the line held by it, and the mark saying it filled the line.
    static func fillRecordedInMark(_ redis: RedisClient, sku: String, event: String) throws {
        let line = RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1")
        try redis.send("HSET", line, "decision", "backordered", "status", "allocated", "q", 3, "confirmedBy", "o1",
                       "allocatedBy", event, "w:\(event)", 1, "writers", 1)
        let result = #"{"locations":[{"onHandBefore":"0","onHandAfter":"10","availableBefore":"0","availableAfter":"7"}],"#
            + #""confirms":{},"cancels":{},"fills":[{"loc":"1","order":"O","lineId":"1","q":"3","confirmedBy":"o1"}]}"#
        try redis.send("SET", RedisKeys.applied(sku: sku, eventId: event), "d-\(event)|" + result)
    }

    /// A release after a crash (what the event filled is not known here): the
    /// lines its mark names still expire after the grace, with the mark.
    @Test func aReleaseAfterACrashExpiresTheLinesTheMarkNames() async throws {
        let sku = "T\(UUID().uuidString.prefix(8))-S"
        let (line, mark) = try await blocking {
            let redis = try Self.redis()
            try Self.fillRecordedInMark(redis, sku: sku, event: "r1")
            try Self.hotStore(redis, sku: sku, grace: .seconds(30))
                .release([(Self.receipt("r1", sku: sku, quantity: 10), nil)], eventKeys: [String]())
            return (try redis.send("PTTL", RedisKeys.orderLine(sku: sku, orderId: "O", lineId: "1")).int ?? 0,
                    try redis.send("PTTL", RedisKeys.applied(sku: sku, eventId: "r1")).int ?? 0)
        }
        #expect((1...30_000).contains(line))
        #expect((1...30_000).contains(mark))
    }
}
