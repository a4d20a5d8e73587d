/// A Redis reply, deep-copied out of hiredis: no C pointer outlives the call that read it.
public enum RESPValue: Sendable, Hashable {
    case status(String)
    case bulk([UInt8])
    case integer(Int64)
    case array([RESPValue])
    case null
    case error(RedisServerError)

    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    public var array: [RESPValue]? {
        if case .array(let values) = self { values } else { nil }
    }

    /// The reply itself, or its server error thrown.
    public func get() throws(RedisError) -> RESPValue {
        if case .error(let error) = self { throw .server(error) }
        return self
    }
}
