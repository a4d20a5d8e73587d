import BlockingIO
import Foundation

/// What the product talks to: one Redis, or a Redis Cluster behind the same
/// calls. Given any one node (or several seeds), it asks the node whether it is
/// a cluster (`INFO cluster`); for a cluster it reads the slot map, keeps one
/// connection per primary, and routes every command and script by the slot of
/// its first key, pipelining per node.
///
/// Blocking and not thread-safe, like `RedisConnection`: one owner, on a
/// `DedicatedThread`.
public final class RedisClient: RedisCommandRunner {
    public let url: RedisURL
    private let single: RedisConnection?
    private let cluster: ClusterRouter?

    /// Connects at once (to the first seed that answers), so that a wrong
    /// address or password is reported here.
    public init(url: RedisURL, connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5)) throws(RedisError) {
        self.url = url
        var failure = RedisError.connection("no seed node in \(url)")
        for seed in url.seeds {
            let connection: RedisConnection
            let info: String
            do {
                connection = try RedisConnection(url: url.at(seed), connectTimeout: connectTimeout, commandTimeout: commandTimeout)
                info = try connection.send("INFO", "cluster").string ?? ""
            } catch where error.isRetriable {
                failure = error
                continue
            }
            guard info.contains("cluster_enabled:1") else {
                guard url.moreSeeds.isEmpty else {
                    throw .invalidURL("several addresses name a Redis Cluster's seed nodes, but \(seed) is a single Redis")
                }
                single = connection
                cluster = nil
                return
            }
            guard url.database == 0 else { throw .invalidURL("a Redis Cluster has only database 0, got \(url.database)") }
            single = nil
            cluster = try ClusterRouter(url: url, seed: connection, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
            return
        }
        throw failure
    }

    /// Whether this is a Redis Cluster.
    public var isCluster: Bool { cluster != nil }

    public func disconnect() {
        single?.disconnect()
        cluster?.disconnect()
    }

    // MARK: Commands

    /// Every command's reply, in order; a server error is returned in its
    /// command's place, a connection error throws (see `RedisConnection.pipeline`).
    /// On a cluster, each command goes to the primary of its first key's slot,
    /// and commands of one slot keep their order.
    public func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RESPValue] {
        if let single { return try single.pipeline(commands) }
        return try cluster!.execute(commands.map { .command($0) })
    }

    // MARK: Scripts

    /// Runs many script calls in one pipeline (per node, on a cluster), loading
    /// scripts where they are not yet, and again wherever a node answers NOSCRIPT.
    public func evaluateAll(_ calls: [RedisScript.Call]) throws(RedisError) -> [RESPValue] {
        if let single { return try single.evaluateAll(calls) }
        return try cluster!.execute(calls.map { .script($0) })
    }

    /// Runs each group of commands as one atomic step (a script, so that on a
    /// cluster it is routed, redirected and retried like any other): every
    /// group's commands must touch keys of one slot. Each group's reply: OK or
    /// the first error, in which case the group stopped there.
    public func atomically(_ groups: [[RedisCommand]]) throws(RedisError) -> [RESPValue] {
        try evaluateAll(groups.map { group in
            var keys: [any RedisArgument] = []
            var arguments: [any RedisArgument] = []
            for command in group {
                if let key = command.routingKey { keys.append(Array(key)) }
                arguments.append(command.argumentCount)
                for index in 0..<command.argumentCount { arguments.append(Array(command.argument(index))) }
            }
            return RedisScript.Call(script: Self.atomicScript, keys: keys, arguments: arguments)
        })
    }

    private static let atomicScript = RedisScript(name: "wms_atomically", source: """
        -- KEYS: the keys the commands touch (one slot). ARGV: per command, its
        -- number of arguments, then its arguments.
        local i = 1
        while i <= #ARGV do
            local count = tonumber(ARGV[i])
            redis.call(unpack(ARGV, i + 1, i + count))
            i = i + count + 1
        end
        return 'OK'
        """)

    // MARK: Every node

    /// A slot served by each primary (slot 0 alone, when not a cluster): what
    /// lands in it lands on that node.
    public func oneSlotPerPrimary() throws(RedisError) -> [Int] {
        guard let cluster else { return [0] }
        return try cluster.oneSlotPerPrimary()
    }

    /// Deletes keys (UNLINK), on a cluster one command per slot; how many existed.
    @discardableResult
    public func unlink(_ keys: [String]) throws(RedisError) -> Int {
        guard !keys.isEmpty else { return 0 }
        let commands: [RedisCommand]
        if cluster == nil {
            commands = [RedisCommand(["UNLINK"] + keys)]
        } else {
            var bySlot: [Int: [any RedisArgument]] = [:]
            for key in keys { bySlot[RedisClusterSlot.of(key: key), default: []].append(key) }
            commands = bySlot.values.map { RedisCommand(["UNLINK"] + $0) }
        }
        var deleted = 0
        for reply in try pipeline(commands) { deleted += Int(try reply.get().int ?? 0) }
        return deleted
    }

    /// A connection to every primary (the one Redis, when not a cluster): for
    /// what runs per node, such as SCAN, DBSIZE or INFO.
    public func primaries() throws(RedisError) -> [RedisConnection] {
        if let single { return [single] }
        return try cluster!.primaries()
    }

    /// Every primary's place in replication (the one Redis's, when not a
    /// cluster), asked of all at once. A node the slot map takes for a primary
    /// that no longer is one (a failover the map has not caught up with) fails
    /// the call, retriably, and the map is read again.
    public func replication() throws(RedisError) -> [RedisReplication] {
        let replies = if let single { [(Self.address(of: single), try single.send(Self.replicationInfo))] }
            else { try cluster!.onEveryPrimary(Self.replicationInfo) }
        return try primaries(replies)
    }

    /// `pipeline`, and every primary's place in replication (see `replication`)
    /// asked in the same round trip, before the commands.
    public func pipelineAskingReplication(_ commands: [RedisCommand]) throws(RedisError)
        -> (replies: [RESPValue], replication: [RedisReplication]) {
        if let single {
            let replies = try single.pipeline([Self.replicationInfo] + commands)
            return (Array(replies.dropFirst()), try primaries([(Self.address(of: single), replies[0])]))
        }
        let nodes = try cluster!.primariesBySlotNow()
        let replies = try cluster!.execute(nodes.map { .keyless(Self.replicationInfo, slot: $0.slot) } + commands.map { .command($0) })
        return (Array(replies.dropFirst(nodes.count)), try primaries(zip(nodes.map(\.address), replies).map { ($0, $1) }))
    }

    private static let replicationInfo = RedisCommand("INFO", "replication")

    private static func address(of connection: RedisConnection) -> RedisAddress {
        RedisAddress(host: connection.url.host, port: connection.url.port)
    }

    private func primaries(_ replies: [(RedisAddress, RESPValue)]) throws(RedisError) -> [RedisReplication] {
        var nodes: [RedisReplication] = []
        for (address, reply) in replies {
            let node = try RedisReplication(info: try reply.get().string ?? "", node: address)
            guard node.isPrimary else {
                cluster?.markStale()
                throw .server(RedisServerError(prefix: "READONLY", message: "\(address) is no longer a primary"))
            }
            nodes.append(node)
        }
        return nodes
    }
}

/// A request routed by slot: a command, or a script call run by its hash (by
/// the slot of the first key), or a command without a key sent to the primary
/// of a given slot.
enum RoutedRequest {
    case command(RedisCommand)
    case script(RedisScript.Call)
    case keyless(RedisCommand, slot: Int)

    var slot: Int {
        switch self {
        case .command(let command): command.routingKey.map { RedisClusterSlot.of(key: $0) } ?? 0
        case .script(let call):
            call.keys.first.map { key in
                var bytes: [UInt8] = []
                key.appendRedisBytes(to: &bytes)
                return RedisClusterSlot.of(key: bytes[...])
            } ?? 0
        case .keyless(_, let slot): slot
        }
    }
}

/// The cluster side of `RedisClient`: the slot map, a connection per node, and
/// the redirections (`MOVED`, `ASK`) and transient refusals (`TRYAGAIN`,
/// `CLUSTERDOWN`) that a cluster answers while slots move or nodes fail.
final class ClusterRouter {
    private let url: RedisURL
    private let connectTimeout: Duration
    private let commandTimeout: Duration
    private var connections: [RedisAddress: RedisConnection] = [:]
    /// The primary serving each slot.
    private var slots: [RedisAddress?] = Array(repeating: nil, count: RedisClusterSlot.count)
    /// Each primary with the first slot it serves, as the map last read says
    /// (asked for every batch: not worth a walk over every slot each time).
    private var primariesBySlot: [(slot: Int, address: RedisAddress)] = []
    /// Set when the map is known to be out of date: read again before the next request.
    private var stale = false

    /// Redirections and retries one request may take before its last error is its reply.
    static let attempts = 8

    init(url: RedisURL, seed: RedisConnection, connectTimeout: Duration, commandTimeout: Duration) throws(RedisError) {
        self.url = url
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        connections[RedisAddress(host: seed.url.host, port: seed.url.port)] = seed
        try refresh()
    }

    func disconnect() {
        for connection in connections.values { connection.disconnect() }
    }

    func primaries() throws(RedisError) -> [RedisConnection] {
        if stale { try refresh() }
        var primaries: [RedisConnection] = []
        for (_, address) in primariesBySlot { primaries.append(try connection(address)) }
        return primaries
    }

    /// One command on every primary, written to all of them first and read after.
    func onEveryPrimary(_ command: RedisCommand) throws(RedisError) -> [(RedisAddress, RESPValue)] {
        if stale { try refresh() }
        var written: [(address: RedisAddress, connection: RedisConnection)] = []
        do {
            for (_, address) in primariesBySlot {
                let connection = try connection(address)
                try connection.write([command])
                written.append((address, connection))
            }
        } catch {
            abandon(written.map(\.connection))
            throw error
        }
        var replies: [(RedisAddress, RESPValue)] = []
        for (number, (address, connection)) in written.enumerated() {
            do {
                replies.append((address, try connection.read(1)[0]))
            } catch {
                abandon(written[(number + 1)...].map(\.connection))
                throw error
            }
        }
        return replies
    }

    /// The map is out of date: read it again before the next request.
    func markStale() { stale = true }

    func oneSlotPerPrimary() throws(RedisError) -> [Int] {
        try primariesBySlotNow().map(\.slot)
    }

    /// Each primary with a slot it serves, as the map says (read again first if stale).
    func primariesBySlotNow() throws(RedisError) -> [(slot: Int, address: RedisAddress)] {
        if stale { try refresh() }
        return primariesBySlot
    }

    /// Reads the slot map from the first node that answers: the known ones, then the seeds.
    func refresh() throws(RedisError) {
        var failure = RedisError.connection("no Redis Cluster node answered CLUSTER SLOTS")
        let candidates = Array(connections.keys) + url.seeds.filter { connections[$0] == nil }
        for address in candidates {
            do {
                let reply = try connection(address).send("CLUSTER", "SLOTS")
                try apply(slotMap: reply, askedAt: address)
                stale = false
                return
            } catch where error.isRetriable {
                failure = error
            }
        }
        throw failure
    }

    private func apply(slotMap reply: RESPValue, askedAt: RedisAddress) throws(RedisError) {
        guard let ranges = reply.array else { throw .unexpectedReply("CLUSTER SLOTS returned \(reply)") }
        var slots = [RedisAddress?](repeating: nil, count: RedisClusterSlot.count)
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let first = parts[0].int, let last = parts[1].int,
                  let node = parts[2].array, node.count >= 2, let host = node[0].string, let port = node[1].int,
                  0 <= first, first <= last, last < RedisClusterSlot.count else {
                throw .unexpectedReply("CLUSTER SLOTS entry \(range)")
            }
            // An empty host means "the address you asked".
            let address = RedisAddress(host: host.isEmpty ? askedAt.host : host, port: Int(port))
            for slot in Int(first)...Int(last) { slots[slot] = address }
        }
        self.slots = slots
        var seen: Set<RedisAddress> = []
        primariesBySlot = slots.indices.compactMap { slot in
            slots[slot].flatMap { seen.insert($0).inserted ? (slot, $0) : nil }
        }
        // Nodes no longer primary for any slot keep no connection.
        let serving = seen
        for (address, connection) in connections where !serving.contains(address) {
            connection.disconnect()
            connections[address] = nil
        }
    }

    private func connection(_ address: RedisAddress) throws(RedisError) -> RedisConnection {
        if let connection = connections[address] { return connection }
        let connection = try RedisConnection(url: url.at(address), connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        connections[address] = connection
        return connection
    }

    /// Where a request goes in one round.
    private enum Target: Hashable {
        /// The primary of the slot, as the map says.
        case slot(Int)
        /// The node a MOVED named (the map is read again after the round).
        case node(RedisAddress)
        /// The node an ASK named: ASKING first, this request only.
        case asking(RedisAddress)
    }

    private struct Pending {
        var index: Int
        var slot: Int
        var target: Target
    }

    /// Every request's reply, in order. Requests are written to every node
    /// first and the replies read after, so the nodes work side by side. A
    /// request redirected or refused for now is sent again in a next round, in
    /// its place among the others sent again. (A slot's requests meet the same
    /// redirection together: they go to one node, which owns their keys or not.)
    func execute(_ requests: [RoutedRequest]) throws(RedisError) -> [RESPValue] {
        guard !requests.isEmpty else { return [] }
        if stale { try refresh() }
        var replies = [RESPValue](repeating: .null, count: requests.count)
        var pending = requests.indices.map { index in
            let slot = requests[index].slot
            return Pending(index: index, slot: slot, target: .slot(slot))
        }
        for round in 0..<Self.attempts {
            var batches: [(address: RedisAddress, items: [Pending])] = []
            var batchOf: [RedisAddress: Int] = [:]
            for item in pending {
                let address: RedisAddress
                switch item.target {
                case .slot(let slot):
                    guard let primary = slots[slot] else {
                        replies[item.index] = .error(RedisServerError(prefix: "CLUSTERDOWN", message: "no node serves slot \(slot)"))
                        continue
                    }
                    address = primary
                case .node(let node), .asking(let node): address = node
                }
                if let batch = batchOf[address] {
                    batches[batch].items.append(item)
                } else {
                    batchOf[address] = batches.count
                    batches.append((address, [item]))
                }
            }
            var sent: [(connection: RedisConnection, items: [Pending], commands: Int)] = []
            do {
                for (address, items) in batches {
                    let connection = try connection(address)
                    var commands: [RedisCommand] = []
                    commands.reserveCapacity(items.count)
                    for item in items {
                        if case .asking = item.target { commands.append(RedisCommand("ASKING")) }
                        switch requests[item.index] {
                        case .command(let command), .keyless(let command, _): commands.append(command)
                        case .script(let call): commands.append(call.command(sha: try connection.sha(of: call.script)))
                        }
                    }
                    try connection.write(commands)
                    sent.append((connection, items, commands.count))
                }
            } catch {
                abandon(sent.map(\.connection))
                throw error
            }
            var next: [Pending] = []
            var moved = false
            var backOff = false
            for (number, (connection, items, count)) in sent.enumerated() {
                let answers: [RESPValue]
                do {
                    answers = try connection.read(count)
                } catch {
                    abandon(sent[(number + 1)...].map(\.connection))
                    throw error
                }
                var position = 0
                for item in items {
                    if case .asking = item.target { position += 1 }  // ASKING's own +OK
                    let answer = answers[position]
                    position += 1
                    guard case .error(let error) = answer, round < Self.attempts - 1 else {
                        replies[item.index] = answer
                        continue
                    }
                    switch error.prefix {
                    case "MOVED":
                        guard let address = Self.address(in: error) else { replies[item.index] = answer; continue }
                        slots[item.slot] = address
                        moved = true
                        next.append(Pending(index: item.index, slot: item.slot, target: .node(address)))
                    case "ASK":
                        guard let address = Self.address(in: error) else { replies[item.index] = answer; continue }
                        next.append(Pending(index: item.index, slot: item.slot, target: .asking(address)))
                    case "TRYAGAIN", "CLUSTERDOWN":
                        backOff = true
                        if error.prefix == "CLUSTERDOWN" { moved = true }
                        next.append(Pending(index: item.index, slot: item.slot, target: .slot(item.slot)))
                    case "NOSCRIPT":
                        if case .script(let call) = requests[item.index] { connection.forget(call.script) }
                        next.append(item)
                    default:
                        replies[item.index] = answer
                    }
                }
            }
            if next.isEmpty { return replies }
            next.sort { $0.index < $1.index }
            pending = next
            if moved { try? refresh() }
            if backOff { Thread.sleep(forTimeInterval: min(0.01 * Double(1 << round), 0.5)) }
        }
        return replies
    }

    /// A round failed part way (a node did not answer, and may have failed
    /// over: the map is read again before the next call). The connections
    /// written to whose replies were not read are dropped: left open, the next
    /// call would read these replies as its own.
    private func abandon(_ unread: [RedisConnection]) {
        stale = true
        for connection in unread { connection.disconnect() }
    }

    /// `MOVED 3999 127.0.0.1:6381` → 127.0.0.1:6381.
    private static func address(in error: RedisServerError) -> RedisAddress? {
        guard let target = error.message.split(separator: " ").last, let colon = target.lastIndex(of: ":"),
              let port = Int(target[target.index(after: colon)...]) else { return nil }
        return RedisAddress(host: String(target[..<colon]), port: port)
    }
}

/// What sends commands and scripts, one Redis or many: the single-command
/// calls below are pipelines of one.
public protocol RedisCommandRunner: AnyObject {
    func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RESPValue]
    func evaluateAll(_ calls: [RedisScript.Call]) throws(RedisError) -> [RESPValue]
}

extension RedisCommandRunner {
    /// Sends one command and returns its reply; a server error is thrown.
    @discardableResult
    public func send(_ command: RedisCommand) throws(RedisError) -> RESPValue {
        try pipeline([command])[0].get()
    }

    @discardableResult
    public func send(_ name: String, _ arguments: any RedisArgument...) throws(RedisError) -> RESPValue {
        try send(RedisCommand([name] + arguments))
    }

    @discardableResult
    public func evaluate(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) throws(RedisError) -> RESPValue {
        try evaluateAll([RedisScript.Call(script: script, keys: keys, arguments: arguments)])[0].get()
    }
}
