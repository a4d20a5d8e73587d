import BlockingIO
import CHiredis
import Foundation

/// One blocking connection to Redis over hiredis.
///
/// Blocking: call it from a `DedicatedThread` (an actor pinned to one, or a task
/// executor preference), never from the cooperative pool. Not thread-safe: one
/// owner at a time. A dropped connection surfaces as a retriable
/// `RedisError.connection`, and the next command connects again (with AUTH and
/// SELECT), so an owner that retries needs nothing else.
public final class RedisConnection: RedisCommandRunner {
    public let url: RedisURL
    public let connectTimeout: Duration
    public let commandTimeout: Duration
    private var context: UnsafeMutablePointer<redisContext>?
    /// SHA1 of each script this connection has loaded, by script name.
    private var scriptHashes: [String: String] = [:]

    /// Connects at once, so that a wrong address or password is reported here.
    public init(url: RedisURL, connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5)) throws(RedisError) {
        self.url = url
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        try connectIfNeeded()
    }

    deinit { disconnect() }

    public var isConnected: Bool { context != nil }

    public func disconnect() {
        if let context { redisFree(context) }
        context = nil
    }

    // MARK: Commands

    /// Sends every command and reads every reply, pipelined: commands go out in
    /// chunks, and while Redis works on one chunk this side formats the next and
    /// reads the replies of the one before, so neither waits for the other as it
    /// would with everything sent first and read after.
    /// A server error for one command is returned in its place (`.error`), so the
    /// caller sees which ones failed; a connection error throws, and then none of
    /// the replies are known.
    public func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RESPValue] {
        assert(DedicatedThread.isCurrent, "blocking Redis call off a DedicatedThread")
        guard !commands.isEmpty else { return [] }
        let context = try connectIfNeeded()
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        var sent = 0
        while sent < commands.count {
            let end = min(sent + Self.chunk, commands.count)
            for command in commands[sent..<end] {
                try append(command, to: context)
            }
            try flush(context)
            // The chunk before this one: Redis has been working on it meanwhile.
            while replies.count < sent {
                replies.append(try readReply(context))
            }
            sent = end
        }
        while replies.count < commands.count {
            replies.append(try readReply(context))
        }
        return replies
    }

    /// Sends commands without reading their replies: the cluster client writes to
    /// every node first, then reads (`read`), so the nodes work side by side.
    func write(_ commands: [RedisCommand]) throws(RedisError) {
        assert(DedicatedThread.isCurrent, "blocking Redis call off a DedicatedThread")
        let context = try connectIfNeeded()
        for command in commands {
            try append(command, to: context)
        }
        try flush(context)
    }

    /// The replies of the next `count` commands written.
    func read(_ count: Int) throws(RedisError) -> [RESPValue] {
        guard let context else { throw .connection("\(url.host):\(url.port): connection dropped before its replies were read") }
        var replies: [RESPValue] = []
        replies.reserveCapacity(count)
        for _ in 0..<count {
            replies.append(try readReply(context))
        }
        return replies
    }

    /// Commands per chunk of a pipeline: enough to keep Redis busy while the
    /// next chunk is formatted, few enough that it starts early.
    static let chunk = 128

    private func flush(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw dropConnection(context) }
        }
    }

    private func readReply(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) -> RESPValue {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw dropConnection(context)
        }
        defer { freeReplyObject(raw) }
        return Self.copy(raw.assumingMemoryBound(to: redisReply.self))
    }

    // MARK: Scripts

    /// Runs many script calls in one pipeline with EVALSHA, loading each script
    /// first if this connection has not. Calls answered NOSCRIPT (after SCRIPT
    /// FLUSH or a restart) did not run:
    /// their scripts are loaded again and those calls alone are sent again, in order.
    public func evaluateAll(_ calls: [RedisScript.Call]) throws(RedisError) -> [RESPValue] {
        var commands: [RedisCommand] = []
        commands.reserveCapacity(calls.count)
        for call in calls {
            commands.append(call.command(sha: try sha(of: call.script)))
        }
        var replies = try pipeline(commands)
        let missing = replies.indices.filter { replies[$0].isNoScript }
        guard !missing.isEmpty else { return replies }
        var reloaded: Set<String> = []
        for index in missing where reloaded.insert(calls[index].script.name).inserted {
            try load(calls[index].script)
        }
        let retried = try pipeline(missing.map { calls[$0].command(sha: scriptHashes[calls[$0].script.name]!) })
        for (index, reply) in zip(missing, retried) {
            replies[index] = reply
        }
        return replies
    }

    /// The hash a script runs by, loading it first if this connection has not.
    /// By name: hashing a script's source for every call costs more than the call.
    func sha(of script: RedisScript) throws(RedisError) -> String {
        if let sha = scriptHashes[script.name] { return sha }
        try load(script)
        return scriptHashes[script.name]!
    }

    /// Loads the script again at its next use (the server answered NOSCRIPT).
    func forget(_ script: RedisScript) {
        scriptHashes[script.name] = nil
    }

    private func load(_ script: RedisScript) throws(RedisError) {
        guard let sha = try send("SCRIPT", "LOAD", script.source).string else {
            throw .unexpectedReply("SCRIPT LOAD of \(script.name) returned no hash")
        }
        scriptHashes[script.name] = sha
    }

    // MARK: Connection

    @discardableResult
    private func connectIfNeeded() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if let context { return context }
        guard let context = redisConnectWithTimeout(url.host, Int32(url.port), Self.timeval(connectTimeout)) else {
            throw .connection("cannot allocate a hiredis context")
        }
        if context.pointee.err != 0 {
            let detail = Self.errorString(context)
            redisFree(context)
            throw .connection("connect to \(url.host):\(url.port): \(detail)")
        }
        guard redisSetTimeout(context, Self.timeval(commandTimeout)) == REDIS_OK else {
            let detail = Self.errorString(context)
            redisFree(context)
            throw .connection("set timeout: \(detail)")
        }
        self.context = context
        do {
            if let password = url.password {
                if let username = url.username {
                    try send("AUTH", username, password)
                } else {
                    try send("AUTH", password)
                }
            }
            if url.database != 0 {
                try send("SELECT", url.database)
            }
        } catch {
            disconnect()
            throw error
        }
        return context
    }

    private func append(_ command: RedisCommand, to context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        let status: Int32 = command.bytes.withUnsafeBufferPointer { buffer in
            // An empty buffer has no base address; any valid pointer serves zero-length arguments.
            let base = buffer.baseAddress.map(UnsafeRawPointer.init) ?? UnsafeRawPointer(bitPattern: 1)!
            var offset = 0
            var argv: [UnsafePointer<CChar>?] = command.lengths.map { length in
                defer { offset += length }
                return (base + offset).assumingMemoryBound(to: CChar.self)
            }
            return command.lengths.withUnsafeBufferPointer { lengths in
                redisAppendCommandArgv(context, Int32(command.lengths.count), &argv, lengths.baseAddress)
            }
        }
        if status != REDIS_OK { throw dropConnection(context) }
    }

    /// hiredis contexts cannot be used after an I/O or protocol error: free it and
    /// report the error; the next command reconnects.
    private func dropConnection(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let detail = context.pointee.err == 0 ? "no reply" : Self.errorString(context)
        disconnect()
        return .connection("\(url.host):\(url.port): \(detail)")
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    private static func timeval(_ duration: Duration) -> timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let r = reply.pointee
        func text() -> [UInt8] {
            guard let str = r.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: Int(r.len)))
        }
        switch r.type {
        case REDIS_REPLY_STRING: return .bulk(text())
        case REDIS_REPLY_STATUS: return .status(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(r.integer))
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_ERROR: return .error(RedisServerError(reply: String(decoding: text(), as: UTF8.self)))
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(r.elements)).map { copy(r.element[$0]!) })
        default: return .error(RedisServerError(prefix: "WMSUNKNOWN", message: "reply type \(r.type)"))
        }
    }
}

extension RESPValue {
    var isNoScript: Bool {
        if case .error(let error) = self { return error.prefix == "NOSCRIPT" }
        return false
    }
}
