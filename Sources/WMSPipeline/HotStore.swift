import Foundation
import Redis
import WMSDomain
import WMSStore

/// One event's changes to one SKU: its part of an `apply_event.lua` call (which
/// takes a SKU's events of a batch in order).
struct SKUChange: Sendable {
    struct Location: Sendable {
        var locationId: String
        var deltas: Deltas
    }

    struct Confirm: Sendable {
        var location: Int
        var orderId: String
        var lineId: String
        var quantity: Int64
        var reservationId: String?
        /// The order (or this line) was cancelled before its confirmation came.
        var cancelled: Bool
    }

    struct Cancel: Sendable {
        var location: Int
        var orderId: String
        var lineId: String
        /// What PostgreSQL holds for the line, for when its Redis key has expired.
        var known: (status: String, quantity: Int64)?
        /// PostgreSQL's picks of the order at the location, for when its Redis tally has expired.
        var picks = PickHistory()
    }

    var eventId: String
    var digest: String
    var sku: String
    /// Every location touched, each with its summed deltas.
    var locations: [Location] = []
    var picks: [(location: Int, orderId: String, quantity: Int64)] = []
    var confirms: [Confirm] = []
    var cancels: [Cancel] = []

    init(eventId: String, digest: String, sku: String) {
        self.eventId = eventId
        self.digest = digest
        self.sku = sku
    }

    /// The index of `locationId` among the locations, added if new.
    mutating func location(_ locationId: String) -> Int {
        if let index = locations.firstIndex(where: { $0.locationId == locationId }) { return index }
        locations.append(Location(locationId: locationId, deltas: Deltas()))
        return locations.count - 1
    }
}

/// What a location looked like around a change, as the script saw it.
struct LocationChange: Sendable, Equatable {
    var onHandBefore: Int64
    var onHandAfter: Int64
    var availableBefore: Int64
    var availableAfter: Int64
}

/// What the script did (or, for a replay, had done) for one event and SKU.
struct SKUResult: Sendable, Equatable {
    struct Confirmed: Sendable, Equatable {
        var orderId: String
        var lineId: String
        /// reservation, available, backordered or cancelled.
        var decision: String
        var status: String
        /// The place in the backorder queue, for a backordered line.
        var queueSeq: Int64
        /// Decided before, by another event: nothing changed now.
        var existing: Bool
    }

    struct Cancelled: Sendable, Equatable {
        var orderId: String
        var lineId: String
        var quantity: Int64
        var released: Int64
        /// The picks the line accounted for (an allocated line's quantity less what was released).
        var picksUsed: Int64
        /// allocated or backordered.
        var was: String
    }

    struct Filled: Sendable, Equatable {
        var location: Int
        var orderId: String
        var lineId: String
        var quantity: Int64
        /// The event that queued the line.
        var confirmedBy: String
    }

    var locations: [LocationChange] = []
    var confirms: [Confirmed] = []
    var cancels: [Cancelled] = []
    var fills: [Filled] = []
}

enum SKUChangeOutcome: Sendable, Equatable {
    case applied(SKUResult)
    /// Applied before (a redelivery, or a replay after a crash): what it did then.
    case alreadyApplied(SKUResult)
    /// The mark holds another payload's digest.
    case conflict
    /// Not applied, nothing written: a key it reads holds what the script cannot
    /// use, or a bucket would leave the exact range. Why, readably.
    case refused(String)

    /// What the change did, now or before; nil when it did nothing.
    var result: SKUResult? {
        switch self {
        case .applied(let result), .alreadyApplied(let result): result
        case .conflict, .refused: nil
        }
    }
}

/// How waiting order lines are filled when stock grows.
public enum BackorderPolicy: String, Sendable, CaseIterable {
    /// A line that does not fit blocks the lines behind it (the default).
    case strictFIFO = "strict-fifo"
    /// Smaller lines behind it may go first.
    case fillWhatFits = "fill-what-fits"
}

/// The Redis side of a batch: the hot store's scripts and the claims.
///
/// Nothing the worker writes for an event (claims, marks, order lines, pick
/// tallies) expires before the event is committed in PostgreSQL, however long
/// that takes; `release` gives it a short grace after the commit. So Redis memory
/// spent on deduplication is bounded by the events in flight, and whatever Redis
/// no longer holds, PostgreSQL does (contract, section 4).
final class HotStore {
    static let applyScript = script("apply_event")
    static let releaseScript = script("release_keys")

    private static func script(_ name: String) -> RedisScript {
        let url = Bundle.module.url(forResource: name, withExtension: "lua", subdirectory: "Lua")!
        return try! RedisScript(contentsOf: url)
    }

    let hot: RedisClient
    let graceMilliseconds: Int64
    let policy: BackorderPolicy
    /// The Redis state a batch builds on: nothing is claimed or applied unless
    /// Redis holds it (`RedisStateMismatch` otherwise). Set by the pipeline.
    var expectedState = RedisStateSentinel(deployment: "", token: "")

    init(hot: RedisClient, grace: Duration, policy: BackorderPolicy) {
        self.hot = hot
        self.graceMilliseconds = max(1, Int64(grace / .milliseconds(1)))
        self.policy = policy
    }

    /// Throws `RedisStateMismatch` unless Redis holds the expected state.
    func checkState() throws {
        try Self.checkState(try expectedState.found(in: hot), expected: expectedState)
    }

    private static func checkState(_ sentinel: String?, expected: RedisStateSentinel) throws(RedisStateMismatch) {
        guard sentinel == expected.token else { throw RedisStateMismatch(expected: expected.token, found: sentinel) }
    }

    /// An order line a cancellation found, as it found it.
    struct CancelledLine: Sendable {
        var lineId: String
        var sku: String
        var locationId: String
        var known: StoredOrderLine?
    }

    /// What the claims say of a batch's events.
    struct Claims: Sendable {
        /// The digest of the payload that stands for each new eventId.
        var standing: [String: String] = [:]
        /// Events PostgreSQL holds whose keys were never released (a run that died
        /// between its commit and its release): they are released now.
        var unreleased: Set<String> = []
        /// Every primary's place in replication, asked in the same round trip.
        var replication: [RedisReplication] = []
    }

    /// Claims each new eventId for a payload, in the order given: the first payload
    /// to claim an eventId (in this batch, an earlier one, or another worker's) is
    /// the one that stands. And asks, for events PostgreSQL already holds, whether
    /// their claim is still there without expiry. One round trip, which first
    /// checks that Redis still holds the state the batch builds on: the batch's
    /// first Redis step, so a Redis that lost its data is found before any of the
    /// batch is applied (the scripts check again, atomically). It asks every
    /// primary where it stands in replication too (`RedisStateGuard.verify`).
    func claim(_ events: [(eventId: String, digest: String)], known: [String]) throws -> Claims {
        let probes = try expectedState.probeKeys(in: hot)
        let (answers, replication) = try hot.pipelineAskingReplication(probes.map { RedisCommand("GET", $0) }
            + events.map { RedisCommand("SET", RedisKeys.claim(eventId: $0.eventId), $0.digest, "NX", "GET") }
            + known.map { RedisCommand("PTTL", RedisKeys.claim(eventId: $0)) })
        try Self.checkState(try expectedState.found(in: answers.prefix(probes.count)), expected: expectedState)
        let replies = answers.dropFirst(probes.count)
        var claims = Claims(replication: replication)
        for (event, reply) in zip(events, replies) where claims.standing[event.eventId] == nil {
            // Claims of workers before 0004 held "digest|lines".
            claims.standing[event.eventId] = try reply.get().bytes.map { String(decoding: $0.prefix { $0 != UInt8(ascii: "|") }, as: UTF8.self) }
                ?? event.digest
        }
        for (eventId, reply) in zip(known, replies.dropFirst(events.count)) where try reply.get().int == -1 {
            claims.unreleased.insert(eventId)
        }
        return claims
    }

    /// Claims each cancellation for the lines it resolved, one round trip: which
    /// SKUs it touches depends on what PostgreSQL knew of the order when it first
    /// ran, and a replay or a second worker may know more or less, so the first
    /// resolution stands and is returned for every cancellation. Also reads the
    /// resolution of cancellations that are only to be released (`recall`).
    func claimLines(cancellations: [(eventId: String, lines: [CancelledLine])], recall: [String]) throws -> [String: [CancelledLine]] {
        let commands = cancellations.map { RedisCommand("SET", RedisKeys.cancelledLines(eventId: $0.eventId), Self.encode($0.lines), "NX", "GET") }
            + recall.map { RedisCommand("GET", RedisKeys.cancelledLines(eventId: $0)) }
        guard !commands.isEmpty else { return [:] }
        let replies = try hot.pipeline(commands)
        var resolved: [String: [CancelledLine]] = [:]
        for (cancellation, reply) in zip(cancellations, replies) {
            resolved[cancellation.eventId] = try reply.get().bytes.map(Self.decodeLines) ?? cancellation.lines
        }
        for (eventId, reply) in zip(recall, replies.dropFirst(cancellations.count)) {
            if let bytes = try reply.get().bytes { resolved[eventId] = Self.decodeLines(bytes) }
        }
        return resolved
    }

    /// Runs every change, a call per SKU, in one pipeline; the outcome of each, in order.
    func apply(_ changes: [SKUChange], nowMs: Int64) throws -> [SKUChangeOutcome] {
        try zip(run(changes, nowMs: nowMs, checkOnly: false), changes).map { reply, change in
            try Self.outcome(of: reply, locations: change.locations.count)
        }
    }

    /// Whether each change could be applied now, without writing anything: why
    /// not, or nil. One pipeline.
    func refusals(_ changes: [SKUChange], nowMs: Int64) throws -> [String?] {
        try run(changes, nowMs: nowMs, checkOnly: true).map { reply throws(RedisError) in
            guard let parts = reply.array, parts.count == 2, let status = parts[0].string, status == "ok" || status == "refused" else {
                throw .unexpectedReply("apply_event check returned \(reply)")
            }
            return status == "refused" ? parts[1].string ?? "" : nil
        }
    }

    /// Most events in one script call: a call blocks Redis while it runs.
    static let maxEventsPerCall = 64

    /// How many times one event may ask for the keys of the lines its fill
    /// allocates: more means its queue keeps changing under it (another worker
    /// queueing or filling lines of the SKU), and the batch runs again.
    static let maxKeyRequests = 3

    /// Each change's reply (status and body), in order. The changes of a SKU go in
    /// calls of their own, in their order (a SKU's events depend on each other,
    /// other SKUs' do not), at most `maxEventsPerCall` events each: one pipeline.
    ///
    /// An event whose fill would allocate queued lines the call does not declare
    /// (a line queued by an earlier call) writes nothing and asks for their keys;
    /// the SKU's events from it on are sent again, in another pipeline, with
    /// them. Only then: with no queued line, one pipeline as before.
    private func run(_ changes: [SKUChange], nowMs: Int64, checkOnly: Bool) throws -> [RESPValue] {
        guard !changes.isEmpty else { return [] }
        var bySKU: [String: [Int]] = [:]
        var skus: [String] = []
        for (index, change) in changes.enumerated() {
            if bySKU[change.sku] == nil { skus.append(change.sku) }
            bySKU[change.sku, default: []].append(index)
        }
        // Per SKU, the changes still to run and the keys the first of them asked for.
        var pending = skus.map { (sku: $0, indices: ArraySlice(bySKU[$0]!), askedKeys: [String]()) }
        var requests: [Int: Int] = [:]
        var replies = [RESPValue](repeating: .null, count: changes.count)
        while !pending.isEmpty {
            var calls: [RedisScript.Call] = []
            var members: [(pending: Int, group: ArraySlice<Int>)] = []
            // A fresh gate per pipeline: none set by an earlier one stops these calls.
            let gateToken = UUID().uuidString
            for (position, remaining) in pending.enumerated() {
                let indices = remaining.indices
                let groups = stride(from: indices.startIndex, to: indices.endIndex, by: Self.maxEventsPerCall).map {
                    indices[$0..<min($0 + Self.maxEventsPerCall, indices.endIndex)]
                }
                // A SKU's calls after its first must not run when the first stopped to ask for keys.
                let gate = !checkOnly && groups.count > 1 ? RedisKeys.applyGate(sku: remaining.sku, token: gateToken) : nil
                for (number, group) in groups.enumerated() {
                    calls.append(call(group.map { changes[$0] }, asked: number == 0 ? remaining.askedKeys : [], gate: gate,
                                      nowMs: nowMs, checkOnly: checkOnly))
                    members.append((position, group))
                }
            }
            var next: [Int: (indices: ArraySlice<Int>, askedKeys: [String])] = [:]
            for ((position, group), reply) in zip(members, try hot.evaluateAll(calls)) {
                let parts = try Self.eventReplies(reply.get(), events: group.count, expected: expectedState.token)
                if next[position] != nil {
                    // Behind the call that asked: its gate stopped this one.
                    guard parts.allSatisfy({ $0.status == "skipped" }) else {
                        throw RedisError.unexpectedReply("apply_event ran events of \(pending[position].sku) behind one that asked for keys")
                    }
                    continue
                }
                for (offset, index) in zip(group.indices, group) {
                    let part = parts[offset - group.startIndex]
                    guard part.status == "keys" else {
                        replies[index] = .array([.bulk(Array(part.status.utf8)), part.body])
                        continue
                    }
                    requests[index, default: 0] += 1
                    guard requests[index]! <= Self.maxKeyRequests else {
                        throw RedisError.server(RedisServerError(prefix: "TRYAGAIN", message:
                            "the backorder queues of \(pending[position].sku) kept changing while its lines' keys were gathered"))
                    }
                    guard let keys = part.body.bytes.flatMap({ try? JSONValue.parse($0) })?.arrayValue?.compactMap(\.stringValue), !keys.isEmpty else {
                        throw RedisError.unexpectedReply("apply_event asked for keys: \(part.body)")
                    }
                    // The same event asking again (its queue changed): what it asked before may still be needed.
                    let before = offset == pending[position].indices.startIndex ? pending[position].askedKeys : []
                    next[position] = (pending[position].indices[offset...], before + keys)
                    break
                }
            }
            pending = next.sorted { $0.key < $1.key }.map { (pending[$0.key].sku, $0.value.indices, $0.value.askedKeys) }
        }
        return replies
    }

    /// One `apply_event.lua` call for a SKU's changes, in order: KEYS the
    /// sentinel, the gate, each change's keys, then the keys a fill asked for
    /// (last, so that no change's keys move).
    private func call(_ changes: [SKUChange], asked: [String], gate: String?, nowMs: Int64, checkOnly: Bool) -> RedisScript.Call {
        let mark = RedisKeys.applied(sku: changes[0].sku, eventId: changes[0].eventId)
        var keys: [any RedisArgument] = [expectedState.key(nextTo: mark, in: hot)]
        if let gate { keys.append(gate) }
        var arguments: [any RedisArgument] = [nowMs, checkOnly ? "check" : "apply", expectedState.token, gate == nil ? 0 : 2]
        for change in changes {
            let (eventKeys, operations) = Self.keysAndOperations(change, policy: policy)
            arguments += [keys.count, change.digest, operations.serialized(canonical: true)]
            keys += eventKeys
        }
        keys += asked.map { $0 as any RedisArgument }
        return RedisScript.Call(script: Self.applyScript, keys: keys, arguments: arguments)
    }

    /// A call's reply, event by event (each as the status and body the script
    /// returned). Throws `RedisStateMismatch` when Redis did not hold the state.
    private static func eventReplies(_ value: RESPValue, events: Int, expected token: String) throws -> [(status: String, body: RESPValue)] {
        if let parts = value.array, parts.count == 2, parts[0].string == "stale" {
            throw RedisStateMismatch(expected: token, found: parts[1].string.flatMap { $0.isEmpty ? nil : $0 })
        }
        guard let parts = value.array, parts.count == 2 * events else {
            throw RedisError.unexpectedReply("apply_event returned \(value) for \(events) event(s)")
        }
        return try (0..<events).map { event throws(RedisError) in
            guard let status = parts[2 * event].string else { throw .unexpectedReply("apply_event returned \(value)") }
            return (status, parts[2 * event + 1])
        }
    }

    /// After the commit: each change's mark, lines and tallies, and each event's
    /// claims (`eventKeys`), expire after the grace. `fills`: the lines the change
    /// filled from a queue, nil when not known here (after a crash: they are read
    /// from its mark first, one round trip, as the script takes only keys it is
    /// given). A change that holds no key needs no script: its mark just
    /// expires. Two round trips at most besides: the scripts, then the plain expiries,
    /// the marks' before the claims'. A pipeline is sent in chunks, so a run
    /// that dies (or loses its connection) part way leaves a prefix done; the
    /// next run recalls the events whose claim still has no expiry, and with
    /// it their marks. Claims first, a prefix would leave marks no run releases
    /// (found by the protocol model, `Model/pipeline.pml`).
    func release(_ changes: [(change: SKUChange, fills: [SKUResult.Filled]?)], eventKeys: some Collection<String>) throws {
        var calls: [RedisScript.Call] = []
        var expiries: [RedisCommand] = []
        for ((change, _), fills) in zip(changes, try filledLines(changes)) {
            let mark = RedisKeys.applied(sku: change.sku, eventId: change.eventId)
            let held = Self.heldKeys(change) + fills.map { RedisKeys.orderLine(sku: change.sku, orderId: $0.orderId, lineId: $0.lineId) }
            if held.isEmpty {
                expiries.append(RedisCommand("PEXPIRE", mark, graceMilliseconds))
            } else {
                calls.append(RedisScript.Call(script: Self.releaseScript, keys: [mark] + held, arguments: [change.eventId, graceMilliseconds]))
            }
        }
        if !calls.isEmpty {
            for reply in try hot.evaluateAll(calls) { _ = try reply.get() }
        }
        expiries += eventKeys.map { RedisCommand("PEXPIRE", $0, graceMilliseconds) }
        if !expiries.isEmpty {
            for reply in try hot.pipeline(expiries) { _ = try reply.get() }
        }
    }

    /// The lines each change filled from a queue: as given, or as its mark
    /// (`DIGEST|RESULT`) records them when not known here. One pipeline of `GET`s,
    /// only when some are not known; none for a mark that is gone.
    private func filledLines(_ changes: [(change: SKUChange, fills: [SKUResult.Filled]?)]) throws -> [[SKUResult.Filled]] {
        var filled = changes.map { $0.fills ?? [] }
        let unknown = changes.indices.filter { changes[$0].fills == nil }
        guard !unknown.isEmpty else { return filled }
        let marks = try hot.pipeline(unknown.map { RedisCommand("GET", RedisKeys.applied(sku: changes[$0].change.sku, eventId: changes[$0].change.eventId)) })
        for (index, reply) in zip(unknown, marks) {
            guard let mark = try reply.get().bytes, let separator = mark.firstIndex(of: UInt8(ascii: "|")) else { continue }
            filled[index] = Self.parseResult(Array(mark[(separator + 1)...]))?.fills ?? []
        }
        return filled
    }

    static func encode(_ lines: [CancelledLine]) -> [UInt8] {
        JSONValue.array(lines.map { line in
            var fields: [String: JSONValue] = ["lineId": .string(line.lineId), "sku": .string(line.sku), "loc": .string(line.locationId)]
            if let known = line.known {
                fields["status"] = .string(known.status)
                fields["q"] = .integer(known.quantity)
            }
            return .object(fields)
        }).serialized(canonical: true)
    }

    static func decodeLines(_ bytes: [UInt8]) -> [CancelledLine] {
        (try? JSONValue.parse(bytes))?.arrayValue?.compactMap { line -> CancelledLine? in
            guard let lineId = line["lineId"]?.stringValue, let sku = line["sku"]?.stringValue, let location = line["loc"]?.stringValue else { return nil }
            let known = line["status"]?.stringValue.map { status in
                StoredOrderLine(lineId: lineId, sku: sku, locationId: location, quantity: line["q"]?.integerValue ?? 0, status: status)
            }
            return CancelledLine(lineId: lineId, sku: sku, locationId: location, known: known)
        } ?? []
    }

    /// The order lines and pick tallies a change's script may write, recording the
    /// event as their writer (lines it fills from a queue are in its mark).
    static func heldKeys(_ change: SKUChange) -> [String] {
        func tally(_ location: Int, _ orderId: String) -> String {
            RedisKeys.picked(sku: change.sku, location: change.locations[location].locationId, orderId: orderId)
        }
        func line(_ orderId: String, _ lineId: String) -> String { RedisKeys.orderLine(sku: change.sku, orderId: orderId, lineId: lineId) }
        return change.picks.map { tally($0.location, $0.orderId) } + change.confirms.map { line($0.orderId, $0.lineId) }
            + change.cancels.flatMap { [line($0.orderId, $0.lineId), tally($0.location, $0.orderId)] }
    }

    /// KEYS for the call (the mark first) and the operations naming them by index.
    static func keysAndOperations(_ change: SKUChange, policy: BackorderPolicy) -> ([any RedisArgument], JSONValue) {
        let sku = change.sku
        var keys: [any RedisArgument] = [RedisKeys.applied(sku: sku, eventId: change.eventId)]
        func declare(_ key: String) -> JSONValue {
            keys.append(key)
            return .integer(Int64(keys.count))
        }
        let locations: [JSONValue] = change.locations.map { location in
            let growing = location.deltas[.onHand] > 0
            return .object([
                "live": declare(RedisKeys.live(sku: sku, location: location.locationId)),
                "queue": declare(RedisKeys.backorders(sku: sku, location: location.locationId)),
                "d": .array(location.deltas.values.map { .integer($0) }),
                "fill": .bool(growing),
            ])
        }
        var operations: [String: JSONValue] = [
            "policy": .string(policy == .strictFIFO ? "strict" : "fits"),
            "eventId": .string(change.eventId),
            "lineKeyPrefix": .string(RedisKeys.orderLinePrefix(sku: sku)),
            "seq": declare(RedisKeys.backorderSequence(sku: sku)),
            "locations": .array(locations),
        ]
        operations["picks"] = .array(change.picks.map { pick in
            .object(["picked": declare(RedisKeys.picked(sku: sku, location: change.locations[pick.location].locationId, orderId: pick.orderId)),
                     "q": .integer(pick.quantity)])
        })
        operations["confirm"] = .array(change.confirms.map { confirm in
            var fields: [String: JSONValue] = [
                "loc": .integer(Int64(confirm.location + 1)),
                "line": declare(RedisKeys.orderLine(sku: sku, orderId: confirm.orderId, lineId: confirm.lineId)),
                "order": .string(confirm.orderId), "lineId": .string(confirm.lineId),
                "q": .integer(confirm.quantity), "cancelled": .bool(confirm.cancelled),
            ]
            if let reservation = confirm.reservationId { fields["res"] = declare(RedisKeys.reservation(sku: sku, reservationId: reservation)) }
            return .object(fields)
        })
        operations["cancel"] = .array(change.cancels.map { cancel in
            var fields: [String: JSONValue] = [
                "loc": .integer(Int64(cancel.location + 1)),
                "line": declare(RedisKeys.orderLine(sku: sku, orderId: cancel.orderId, lineId: cancel.lineId)),
                "picked": declare(RedisKeys.picked(sku: sku, location: change.locations[cancel.location].locationId, orderId: cancel.orderId)),
                "order": .string(cancel.orderId), "lineId": .string(cancel.lineId),
            ]
            if let known = cancel.known { fields["known"] = .object(["status": .string(known.status), "q": .integer(known.quantity)]) }
            fields["pg"] = .object([
                "picks": .object(cancel.picks.byEvent.mapValues { .integer($0) }),
                "used": .object(cancel.picks.usedByLine.mapValues { .integer($0) }),
            ])
            return .object(fields)
        })
        return (keys, .object(operations))
    }

    static func outcome(of reply: RESPValue, locations: Int) throws(RedisError) -> SKUChangeOutcome {
        guard let parts = reply.array, parts.count == 2, let status = parts[0].string, let body = parts[1].bytes else {
            throw .unexpectedReply("apply_event returned \(reply)")
        }
        switch status {
        case "error": throw .unexpectedReply("apply_event failed: \(String(decoding: body.prefix(300), as: UTF8.self))")
        case "conflict": return .conflict
        case "refused": return .refused(String(decoding: body, as: UTF8.self))
        case "applied", "duplicate":
            guard let result = parseResult(body), result.locations.count == locations else {
                throw .unexpectedReply("apply_event result \(String(decoding: body.prefix(200), as: UTF8.self)) for \(locations) location(s)")
            }
            return status == "applied" ? .applied(result) : .alreadyApplied(result)
        default:
            throw .unexpectedReply("apply_event status '\(status)'")
        }
    }

    /// The script's JSON (numbers as strings; cjson writes an empty list as `{}`).
    static func parseResult(_ bytes: [UInt8]) -> SKUResult? {
        guard let json = try? JSONValue.parse(bytes) else { return nil }
        func list(_ name: String) -> [JSONValue] { json[name]?.arrayValue ?? [] }
        func int(_ value: JSONValue, _ field: String) -> Int64? { value[field]?.stringValue.flatMap { Int64($0) } }
        func text(_ value: JSONValue, _ field: String) -> String? { value[field]?.stringValue }
        var result = SKUResult()
        for location in list("locations") {
            guard let a = int(location, "onHandBefore"), let b = int(location, "onHandAfter"),
                  let c = int(location, "availableBefore"), let d = int(location, "availableAfter") else { return nil }
            result.locations.append(LocationChange(onHandBefore: a, onHandAfter: b, availableBefore: c, availableAfter: d))
        }
        for confirm in list("confirms") {
            guard let order = text(confirm, "order"), let line = text(confirm, "lineId"), let decision = text(confirm, "decision"),
                  let status = text(confirm, "status") else { return nil }
            result.confirms.append(.init(orderId: order, lineId: line, decision: decision, status: status,
                                         queueSeq: int(confirm, "seq") ?? 0, existing: text(confirm, "existing") == "1"))
        }
        for cancel in list("cancels") {
            guard let order = text(cancel, "order"), let line = text(cancel, "lineId"), let released = int(cancel, "released"),
                  let was = text(cancel, "was") else { return nil }
            // Marks of workers before 0004 have no `used`: such a replay records 0.
            let used = int(cancel, "used") ?? 0
            result.cancels.append(.init(orderId: order, lineId: line, quantity: int(cancel, "q") ?? released + used,
                                        released: released, picksUsed: used, was: was))
        }
        for fill in list("fills") {
            guard let location = int(fill, "loc"), let order = text(fill, "order"), let line = text(fill, "lineId"),
                  let quantity = int(fill, "q") else { return nil }
            result.fills.append(.init(location: Int(location) - 1, orderId: order, lineId: line, quantity: quantity,
                                      confirmedBy: text(fill, "confirmedBy") ?? ""))
        }
        return result
    }
}

extension BadEvent {
    /// An event `apply_event.lua` refused for a SKU, writing nothing: a bucket
    /// would leave the exact range, or a key holds what another writer left.
    static func unappliable(eventId: String, sku: String, why: String) -> BadEvent {
        BadEvent(code: .invalidField, detail: "cannot be applied to sku \(sku): \(why)", eventId: eventId)
    }
}

/// The Redis state a batch builds on: the token PostgreSQL's `redis_state`
/// names, held in sentinel keys. On a single Redis, one key; on a Redis
/// Cluster, one per slot, so that each script checks the sentinel of its own
/// slot atomically (a script touches one slot), and a node that lost its data
/// lost the sentinels of all its slots.
public struct RedisStateSentinel: Sendable, Equatable {
    public var deployment: String
    public var token: String

    public init(deployment: String, token: String) {
        self.deployment = deployment
        self.token = token
    }

    public init(_ record: RedisStateRecord) {
        self.init(deployment: record.deployment, token: record.token)
    }

    /// The sentinel a script touching `key` checks.
    public func key(nextTo key: String, in redis: RedisClient) -> String {
        redis.isCluster ? self.key(slot: RedisClusterSlot.of(key: key)) : RedisKeys.stateSentinel(deployment: deployment)
    }

    private func key(slot: Int) -> String {
        RedisKeys.stateSentinel(deployment: deployment, slotTag: RedisClusterSlot.tags[slot])
    }

    /// The sentinels read to tell whether Redis holds the state: one on each node.
    func probeKeys(in redis: RedisClient) throws -> [String] {
        redis.isCluster ? try redis.oneSlotPerPrimary().map(key(slot:)) : [RedisKeys.stateSentinel(deployment: deployment)]
    }

    /// Every sentinel.
    private func allKeys(in redis: RedisClient) -> [String] {
        redis.isCluster ? (0..<RedisClusterSlot.count).map(key(slot:)) : [RedisKeys.stateSentinel(deployment: deployment)]
    }

    /// The token Redis holds: this one when every sentinel read holds it, nil
    /// when one is gone, else the other token found.
    public func found(in redis: RedisClient) throws -> String? {
        try found(in: redis.pipeline(probeKeys(in: redis).map { RedisCommand("GET", $0) }))
    }

    /// The token the replies of GETs of sentinels say Redis holds (see `found(in:)`).
    func found(in replies: some Collection<RESPValue>) throws -> String? {
        var other: String?
        for reply in replies {
            guard let held = try reply.get().string else { return nil }
            if held != token { other = held }
        }
        return other ?? token
    }

    /// Puts this token in Redis (only where a sentinel holds none, with `ifAbsent`).
    public func write(to redis: RedisClient, ifAbsent: Bool = false) throws {
        let commands = allKeys(in: redis).map { ifAbsent ? RedisCommand("SET", $0, token, "NX") : RedisCommand("SET", $0, token) }
        for reply in try redis.pipeline(commands) { _ = try reply.get() }
    }

    /// Takes the sentinels out: from then on no script writes.
    public func remove(from redis: RedisClient) throws {
        try redis.unlink(allKeys(in: redis))
    }

    /// An error that says a batch ran, or was to run, on a Redis state that does
    /// not stand: the batch runs again once the state is established anew.
    public static func isStateError(_ error: any Error) -> Bool {
        error is RedisStateMismatch || error is RedisWritesLost || error is RedisStateChanged || error is RedisRepairUnderWay
    }
}

/// Redis does not hold the state the batch was to build on: its sentinel is
/// gone (Redis lost its data, or a repair is under way) or holds another token
/// (a repair happened). Nothing of the batch was applied.
public struct RedisStateMismatch: Error, Sendable, CustomStringConvertible {
    public let expected: String
    public let found: String?

    public var description: String {
        found == nil ? "Redis does not hold the worker's state (its sentinel is gone): it lost its data, or a repair is under way"
            : "Redis holds another state (\(found!)) than the one expected (\(expected)): it was repaired"
    }
}
