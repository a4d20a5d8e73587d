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
