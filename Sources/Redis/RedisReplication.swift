/// A primary's place in replication, as `INFO replication` tells it. Redis
/// replication is asynchronous: a replica promoted after its primary failed may
/// lack the primary's last writes. What a primary holds is its own history (its
/// replication id, up to its offset) and, if it took over from another primary,
/// that primary's history up to the point where it took over (`master_replid2`,
/// up to `second_repl_offset`, exclusive). So whether a write reached at
/// (replication id, offset) survived a failover is `holds(replid:offset:)`.
public struct RedisReplication: Sendable, Hashable {
    public var node: RedisAddress
    public var isPrimary: Bool
    public var replid: String
    /// How far its history runs: the offset after the last write it took.
    public var offset: Int64
    /// The history it took over (a failover, or `REPLICAOF NO ONE`), if any.
    public var previousReplid: String?
    /// The first offset of `previousReplid`'s history that it does not hold.
    public var previousEnd: Int64

    /// From the text of `INFO replication`.
    public init(info: String, node: RedisAddress) throws(RedisError) {
        var fields: [Substring: Substring] = [:]
        for line in info.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon]] = line[line.index(after: colon)...]
        }
        guard let role = fields["role"], let replid = fields["master_replid"], let offset = fields["master_repl_offset"].flatMap({ Int64($0) })
        else { throw .unexpectedReply("INFO replication of \(node) lacks role, master_replid or master_repl_offset") }
        self.node = node
        isPrimary = role == "master"
        self.replid = String(replid)
        self.offset = offset
        // All zeros: it never took over from another primary.
        previousReplid = fields["master_replid2"].flatMap { $0.allSatisfy { $0 == "0" } ? nil : String($0) }
        previousEnd = fields["second_repl_offset"].flatMap { Int64($0) } ?? -1
    }

    /// Whether this node holds a write that reached `offset` of the history `replid`.
    public func holds(replid: String, offset: Int64) -> Bool {
        if replid == self.replid { return offset <= self.offset }
        if replid == previousReplid { return offset < previousEnd }
        return false
    }
}
