import BlockingIO
import CRdKafka
import Logging

/// A consumer in a consumer group, with offsets stored and committed only when the
/// caller says so (`enable.auto.offset.store=false`, `enable.auto.commit=false`).
///
/// Blocking: call it from a `DedicatedThread`, never from the cooperative pool. Not
/// thread-safe: one owner at a time. Rebalances are handled inside `poll` (the
/// only place librdkafka calls back), eagerly or cooperatively per the group's
/// protocol; what changed is kept for `takeRebalanceEvents()`. `close()` (or
/// dropping the consumer) leaves the group, so its partitions move at once.
public final class KafkaConsumer {
    public let groupID: String
    public let logger: Logger
    let client: RDKafkaClient
    private var closed = false
    /// The log start of partitions `lag` had to ask the broker for (no offset
    /// committed, none cached): asked once, not every time the gauge is read.
    private var logStarts: [KafkaTopicPartition: Int64] = [:]

    public init(config: KafkaConfig, logger: Logger) throws(KafkaError) {
        guard let groupID = config.groupID, !groupID.isEmpty else {
            throw .client("a consumer needs group.id")
        }
        var config = config
        config.setDefault("enable.auto.commit", "false")
        config.setDefault("enable.auto.offset.store", "false")
        config.setDefault("auto.offset.reset", "earliest")
        config.setDefault("enable.partition.eof", "false")
        config.setDefault("log.connection.close", "false")
        // Prefetch: librdkafka's default (64 MiB) is most of the worker's memory
        // behind a large backlog; 16 MiB is still many batches ahead.
        config.setDefault("queued.max.messages.kbytes", "16384")
        self.groupID = groupID
        self.logger = logger
        self.client = try RDKafkaClient(role: .consumer, config: config, logger: logger)
        // One queue for messages, rebalances and errors: consumer poll serves them all.
        _ = rd_kafka_poll_set_consumer(client.handle)
    }

    deinit {
        if !closed { try? close() }
    }

    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let entries = topics.map { (KafkaTopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), offset: KafkaOffset.invalid) }
        try withPartitionList(entries) { list throws(KafkaError) in
            try rd_kafka_subscribe(client.handle, list).check("subscribe to \(topics.joined(separator: ","))")
        }
    }

    /// Waits up to `timeout` for the first message, then takes whatever else is
    /// ready, up to `maxMessages` or until the values add up to `maxBytes`.
    /// Messages of partitions revoked during the poll are left out: their new owner
    /// reads them.
    public func poll(maxMessages: Int, maxBytes: Int = .max, timeout: Duration) throws(KafkaError) -> [KafkaMessage] {
        assert(DedicatedThread.isCurrent, "blocking Kafka call off a DedicatedThread")
        let rebalancesBefore = client.context.rebalanceEvents.count
        var messages: [KafkaMessage] = []
        var bytes = 0
        var wait = timeout.milliseconds
        while messages.count < maxMessages, bytes < maxBytes, let raw = rd_kafka_consumer_poll(client.handle, wait) {
            wait = 0
            defer { rd_kafka_message_destroy(raw) }
            let err = raw.pointee.err
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                messages.append(KafkaMessage(raw))
                bytes += raw.pointee.len
            } else if err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                let error = KafkaError(code: err, message: raw.pointee.errorText)
                if let fatal = client.fatalError() { throw fatal }
                logger.warning("Kafka consumer error", metadata: ["kafka.error": "\(error)"])
            }
        }
        if client.context.rebalanceEvents.count != rebalancesBefore {
            let assigned = client.context.assignment
            messages.removeAll { !assigned.contains($0.topicPartition) }
        }
        return messages
    }

    /// Called inside `poll` (or `close`) before partitions are revoked, while their
    /// offsets can still be committed: where an owner with a batch still in
    /// flight finishes it and commits.
    public var beforeRevoke: ((_ partitions: [KafkaTopicPartition]) -> Void)? {
        get { client.context.beforeRevoke }
        set { client.context.beforeRevoke = newValue }
    }

    /// Rebalances since the last call, oldest first.
    public func takeRebalanceEvents() -> [KafkaRebalanceEvent] {
        defer { client.context.rebalanceEvents.removeAll() }
        return client.context.rebalanceEvents
    }

    public var assignment: Set<KafkaTopicPartition> { client.context.assignment }

    /// The last client-level error librdkafka reported (all brokers down, a fatal
    /// error), cleared by reading it. librdkafka keeps retrying on its own; this
    /// is how the owner learns it is cut off.
    public func takeLastError() -> KafkaError? { client.context.takeLastError() }

    /// Called with every client-level error librdkafka reports (a broker
    /// unreachable, all brokers down, a fatal error), on librdkafka's threads.
    public var onClientError: (@Sendable (KafkaError) -> Void)? {
        get { client.context.onClientError }
        set { client.context.onClientError = newValue }
    }

    /// Stores offsets (next offset to read, per partition) for the next `commit()`.
    public func store(_ offsets: [KafkaTopicPartition: Int64]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        try withPartitionList(offsets.map { ($0.key, offset: $0.value) }) { list throws(KafkaError) in
            try rd_kafka_offsets_store(client.handle, list).check("store offsets")
            try Self.checkEach(list, "store offset")
        }
    }

    /// Commits the stored offsets and waits for the broker's answer.
    public func commit() throws(KafkaError) {
        let code = rd_kafka_commit(client.handle, nil, 0)
        if code == RD_KAFKA_RESP_ERR__NO_OFFSET { return }
        try code.check("commit stored offsets")
    }

    /// Commits these offsets (next offset to read, per partition) and waits for the
    /// broker's answer. Works for partitions this member is not assigned too, as long
    /// as it is a member of the group (what moving a group's offsets needs).
    public func commit(_ offsets: [KafkaTopicPartition: Int64]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        try withPartitionList(offsets.map { ($0.key, offset: $0.value) }) { list throws(KafkaError) in
            try rd_kafka_commit(client.handle, list, 0).check("commit offsets")
            try Self.checkEach(list, "commit offset")
        }
    }

    /// The group's committed offsets; `KafkaOffset.invalid` where none is committed.
    public func committed(_ partitions: [KafkaTopicPartition], timeout: Duration) throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        try withPartitionList(partitions.map { ($0, offset: KafkaOffset.invalid) }) { list throws(KafkaError) in
            try rd_kafka_committed(client.handle, list, timeout.milliseconds).check("read committed offsets")
            try Self.checkEach(list, "committed offset")
            return Dictionary(partitionOffsets(list).map { ($0.0, $0.offset) }, uniquingKeysWith: { $1 })
        }
    }

    /// Moves the read position of assigned partitions; the next poll reads from there.
    public func seek(_ offsets: [KafkaTopicPartition: Int64], timeout: Duration) throws(KafkaError) {
        try withPartitionList(offsets.map { ($0.key, offset: $0.value) }) { list throws(KafkaError) in
            if let error = rd_kafka_seek_partitions(client.handle, list, timeout.milliseconds) {
                throw KafkaError(consuming: error)
            }
            try Self.checkEach(list, "seek")
        }
    }

    /// Moves each partition back to the first of these messages, so the next poll
    /// delivers them again: how a batch that could not be finished is retried while
    /// the consumer keeps polling (and so keeps its place in the group). Partitions
    /// no longer assigned are skipped: their new owner reads them.
    public func rewind(to messages: [KafkaMessage], timeout: Duration) throws(KafkaError) {
        let assigned = client.context.assignment
        let first = messages.offsetRanges.filter { assigned.contains($0.key) }.mapValues(\.lowerBound)
        guard !first.isEmpty else { return }
        try seek(first, timeout: timeout)
    }

    /// The earliest offset whose timestamp is at or after each time (ms since the
    /// epoch); `KafkaOffset.end` where there is none.
    public func offsets(forTimes times: [KafkaTopicPartition: Int64], timeout: Duration) throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        try withPartitionList(times.map { ($0.key, offset: $0.value) }) { list throws(KafkaError) in
            try rd_kafka_offsets_for_times(client.handle, list, timeout.milliseconds).check("offsets for times")
            try Self.checkEach(list, "offset for time")
            return Dictionary(partitionOffsets(list).map { ($0.0, $0.offset) }, uniquingKeysWith: { $1 })
        }
    }

    public func watermarks(of partition: KafkaTopicPartition, timeout: Duration) throws(KafkaError) -> (low: Int64, high: Int64) {
        try client.watermarks(of: partition, timeout: timeout)
    }

    /// Per assigned partition, how many messages lie between the group's
    /// committed offset (`committed`; the log start where none is) and the log
    /// end: the high watermark last seen in fetch responses, or asked of the
    /// broker (within `timeout`) for a partition not fetched from yet. A
    /// partition the broker does not answer for is left out.
    public func lag(committed: [KafkaTopicPartition: Int64], timeout: Duration) -> [KafkaTopicPartition: Int64] {
        var lag: [KafkaTopicPartition: Int64] = [:]
        for partition in client.context.assignment {
            var low: Int64 = -1
            var high: Int64 = -1
            let cached = rd_kafka_get_watermark_offsets(client.handle, partition.topic, partition.partition, &low, &high)
                == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0
            if low < 0, let known = logStarts[partition] { low = known }
            let start = committed[partition].flatMap { $0 >= 0 ? $0 : nil }
            if !cached || (start == nil && low < 0) {
                guard let marks = try? client.watermarks(of: partition, timeout: timeout) else { continue }
                (low, high) = marks
                logStarts[partition] = low
            }
            lag[partition] = max(0, high - (start ?? low))
        }
        return lag
    }

    public func partitionCount(of topic: String, timeout: Duration) throws(KafkaError) -> Int {
        try client.partitionCount(of: topic, timeout: timeout)
    }

    /// Leaves the group (partitions are revoked through the rebalance callback and
    /// handed to the other members at once) and stops fetching.
    public func close() throws(KafkaError) {
        guard !closed else { return }
        closed = true
        try rd_kafka_consumer_close(client.handle).check("close consumer")
    }

    private static func checkEach(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>, _ what: String) throws(KafkaError) {
        for (partition, _, error) in partitionOffsets(list) {
            try error.check("\(what) for \(partition)")
        }
    }
}

extension KafkaMessage {
    /// Copies a message out of librdkafka. Takes the pointer librdkafka handed out, not
    /// a copy of the struct: headers and timestamp are read from the envelope around it.
    init(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let raw = message.pointee
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        var headers: [KafkaHeader] = []
        var headerList: OpaquePointer?
        if rd_kafka_message_headers(message, &headerList) == RD_KAFKA_RESP_ERR_NO_ERROR, let headerList {
            var index = 0
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(headerList, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(KafkaHeader(name: String(cString: name!), value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
                index += 1
            }
        }
        self.init(
            topic: String(cString: rd_kafka_topic_name(raw.rkt)),
            partition: raw.partition,
            offset: raw.offset,
            key: raw.key.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.key_len)) },
            value: raw.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.len)) } ?? [],
            headers: headers,
            timestampMs: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp)
    }
}

extension rd_kafka_message_t {
    /// For an error event, librdkafka puts the error text in the payload.
    var errorText: String? {
        guard let payload else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: payload, count: len), as: UTF8.self)
    }
}
