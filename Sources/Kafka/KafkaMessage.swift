/// A partition of a topic.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible, Comparable {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }

    public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
}

/// Special offsets understood by librdkafka where an offset is expected.
public enum KafkaOffset {
    public static let beginning: Int64 = -2
    public static let end: Int64 = -1
    public static let stored: Int64 = -1000
    /// No committed offset.
    public static let invalid: Int64 = -1001
}

public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }
}

/// A consumed message, copied out of librdkafka.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch, when the broker or producer stamped it.
    public var timestampMs: Int64?

    public var topicPartition: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }
    /// The offset to commit once this message is done: the next one to read.
    public var nextOffset: Int64 { offset + 1 }

    public func header(_ name: String) -> [UInt8]? {
        headers.first { $0.name == name }?.value
    }
}

/// A message to produce.
public struct KafkaOutboundMessage: Sendable {
    public var topic: String
    /// nil lets the partitioner choose from the key.
    public var partition: Int32?
    public var key: [UInt8]?
    /// nil is a null value (a tombstone), which Kafka tells apart from an empty one.
    public var value: [UInt8]?
    public var headers: [KafkaHeader]

    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?, headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// Where the broker stored a produced message.
public struct KafkaDelivery: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}

/// A change of the partitions assigned to a consumer, in the order they happened.
public enum KafkaRebalanceEvent: Sendable, Hashable {
    case assigned([KafkaTopicPartition])
    /// Taken away in an orderly rebalance.
    case revoked([KafkaTopicPartition])
    /// Taken away without a rebalance (session timed out): another member may
    /// already own them, so nothing may be committed for them.
    case lost([KafkaTopicPartition])
}

extension Collection<KafkaMessage> {
    /// Per partition, the lowest and highest offsets among these messages: what
    /// rewinding, committing and describing a batch all start from.
    public var offsetRanges: [KafkaTopicPartition: ClosedRange<Int64>] {
        var ranges: [KafkaTopicPartition: ClosedRange<Int64>] = [:]
        for message in self {
            let range = ranges[message.topicPartition]
            ranges[message.topicPartition] = Swift.min(range?.lowerBound ?? .max, message.offset)...Swift.max(range?.upperBound ?? .min, message.offset)
        }
        return ranges
    }
}
