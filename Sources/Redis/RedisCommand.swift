/// A value that can be sent as one argument of a Redis command, byte for byte.
public protocol RedisArgument: Sendable {
    func appendRedisBytes(to buffer: inout [UInt8])
}

extension String: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Substring: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Array: RedisArgument where Element == UInt8 {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
}

extension Int: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { String(self).appendRedisBytes(to: &buffer) }
}

extension Int64: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { String(self).appendRedisBytes(to: &buffer) }
}

/// One command in argv form: every argument is sent with its length, so any byte
/// (NUL included) is safe and nothing is ever parsed out of a formatted string.
public struct RedisCommand: Sendable {
    /// Every argument's bytes, back to back; one allocation per command.
    var bytes: [UInt8] = []
    var lengths: [Int] = []

    public init(_ arguments: [any RedisArgument]) {
        for argument in arguments { append(argument) }
    }

    public init(_ name: String, _ arguments: any RedisArgument...) {
        append(name)
        for argument in arguments { append(argument) }
    }

    public mutating func append(_ argument: any RedisArgument) {
        let before = bytes.count
        argument.appendRedisBytes(to: &bytes)
        lengths.append(bytes.count - before)
    }
}

extension RedisCommand {
    var argumentCount: Int { lengths.count }

    /// One argument's bytes.
    func argument(_ index: Int) -> ArraySlice<UInt8> {
        let start = lengths[..<index].reduce(0, +)
        return bytes[start..<start + lengths[index]]
    }

    /// The key Redis Cluster routes this command by: the first key it names
    /// (a command touching several must keep them in one slot), nil for a
    /// command that names none.
    var routingKey: ArraySlice<UInt8>? {
        guard argumentCount > 1 else { return nil }
        let name = String(decoding: argument(0), as: UTF8.self).uppercased()
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard argumentCount > 3, let keys = Int(String(decoding: argument(2), as: UTF8.self)), keys > 0 else { return nil }
            return argument(3)
        case "PING", "INFO", "SCAN", "SCRIPT", "CLUSTER", "DBSIZE", "FLUSHALL", "FLUSHDB", "WAIT", "TIME", "CONFIG",
             "ROLE", "CLIENT", "ASKING", "AUTH", "SELECT", "ECHO", "HELLO", "MEMORY", "DEBUG", "LASTSAVE", "SAVE", "BGSAVE":
            return nil
        default:
            return argument(1)
        }
    }
}
