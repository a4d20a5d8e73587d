import CRdKafka
import Foundation
import Logging

/// Owns one `rd_kafka_t` and the context its callbacks reach through `rd_kafka_opaque`.
/// Destroys the handle in `deinit`; a consumer must be closed first (KafkaConsumer does).
final class RDKafkaClient {
    let handle: OpaquePointer
    let context: RDKafkaContext
    private let retainedContext: Unmanaged<RDKafkaContext>

    enum Role {
        case consumer
        case producer
        /// A handle that only hosts something else (the mock cluster).
        case host
    }

    init(role: Role, config: KafkaConfig, logger: Logger) throws(KafkaError) {
        let context = RDKafkaContext(logger: logger)
        let conf = rd_kafka_conf_new()!
        // librdkafka owns `conf` only once rd_kafka_new succeeds; until then it is ours to destroy.
        var errorText = [CChar](repeating: 0, count: 512)
        for (name, value) in config.properties.sorted(by: { $0.key < $1.key }) {
            guard rd_kafka_conf_set(conf, name, value, &errorText, errorText.count) == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(conf)
                let shown = KafkaConfig.isSecret(name) ? "***" : value
                throw .client("librdkafka property \(name)=\(shown): \(String(errorBuffer: errorText))")
            }
        }
        let retained = Unmanaged.passRetained(context)
        rd_kafka_conf_set_opaque(conf, retained.toOpaque())
        rd_kafka_conf_set_log_cb(conf, { handle, level, facility, text in
            RDKafkaContext.from(handle)?.log(level: level, facility: facility, text: text)
        })
        rd_kafka_conf_set_error_cb(conf, { handle, code, reason, _ in
            RDKafkaContext.from(handle)?.clientError(handle: handle, code: code, reason: reason)
        })
        switch role {
        case .consumer:
            rd_kafka_conf_set_rebalance_cb(conf, { handle, code, partitions, _ in
                RDKafkaContext.from(handle)?.rebalance(handle: handle!, code: code, partitions: partitions!)
            })
        case .producer:
            rd_kafka_conf_set_dr_msg_cb(conf, { handle, message, _ in
                RDKafkaContext.from(handle)?.delivered(message!.pointee)
            })
        case .host:
            break
        }
        let type = role == .consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            retained.release()
            throw .client("cannot create Kafka client: \(String(errorBuffer: errorText))")
        }
        self.handle = handle
        self.context = context
        self.retainedContext = retained
    }

    deinit {
        rd_kafka_destroy(handle)
        retainedContext.release()
    }

    /// The error that made this client unusable, if one did.
    func fatalError() -> KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle, &text, text.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code: code, message: String(errorBuffer: text), isFatal: true, isRetriable: false)
    }

    /// Partitions of `topic` per the cluster's metadata.
    func partitionCount(of topic: String, timeout: Duration) throws(KafkaError) -> Int {
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else {
            throw .client("cannot open topic \(topic)")
        }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        try rd_kafka_metadata(handle, 0, topicHandle, &metadata, timeout.milliseconds).check("metadata of \(topic)")
        defer { rd_kafka_metadata_destroy(metadata) }
        guard let metadata, metadata.pointee.topic_cnt == 1 else { throw .client("no metadata for \(topic)") }
        let topicMetadata = metadata.pointee.topics[0]
        try topicMetadata.err.check("topic \(topic)")
        return Int(topicMetadata.partition_cnt)
    }

    /// The low and high watermarks of a partition: first offset kept and next offset to be written.
    func watermarks(of partition: KafkaTopicPartition, timeout: Duration) throws(KafkaError) -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        try rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, timeout.milliseconds)
            .check("watermarks of \(partition)")
        return (low, high)
    }
}

/// What librdkafka's callbacks need. Logging and `lastError` are reached from
/// librdkafka's own threads (lock-guarded); rebalance and delivery callbacks run
/// inside poll on the owner's thread, so their state needs no lock.
final class RDKafkaContext: @unchecked Sendable {
    let logger: Logger
    private let lock = NSLock()
    private var _lastError: KafkaError?
    private var _onClientError: (@Sendable (KafkaError) -> Void)?

    /// Told of every client-level error (from librdkafka's threads): for a metric.
    var onClientError: (@Sendable (KafkaError) -> Void)? {
        get { lock.withLock { _onClientError } }
        set { lock.withLock { _onClientError = newValue } }
    }

    // Owner's thread only (see above).
    var rebalanceEvents: [KafkaRebalanceEvent] = []
    var assignment: Set<KafkaTopicPartition> = []
    var deliveries = DeliveryBatch()
    /// Called before partitions are taken away, while their offsets can still be
    /// committed: the owner settles what it has in flight for them.
    var beforeRevoke: ((_ partitions: [KafkaTopicPartition]) -> Void)?

    init(logger: Logger) { self.logger = logger }

    static func from(_ handle: OpaquePointer?) -> RDKafkaContext? {
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
        return Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue()
    }

    /// The last client-level error (broker down, fatal error), cleared when the caller reads it.
    func takeLastError() -> KafkaError? {
        lock.withLock {
            defer { _lastError = nil }
            return _lastError
        }
    }

    func log(level: Int32, facility: UnsafePointer<CChar>?, text: UnsafePointer<CChar>?) {
        let facility = facility.map { String(cString: $0) } ?? ""
        let text = text.map { String(cString: $0) } ?? ""
        // syslog levels: 0-2 emergency..critical, 3 error, 4 warning, 5 notice, 6 info, 7 debug.
        let swiftLevel: Logger.Level = switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
        logger.log(level: swiftLevel, "\(text)", metadata: ["rdkafka.facility": "\(facility)"], source: "librdkafka")
    }

    func clientError(handle: OpaquePointer?, code: Int32, reason: UnsafePointer<CChar>?) {
        let code = rd_kafka_resp_err_t(rawValue: code)
        var error = KafkaError(code: code, message: reason.map { String(cString: $0) })
        if code == RD_KAFKA_RESP_ERR__FATAL, let handle {
            var text = [CChar](repeating: 0, count: 512)
            let underlying = rd_kafka_fatal_error(handle, &text, text.count)
            error = KafkaError(code: underlying, message: String(errorBuffer: text), isFatal: true, isRetriable: false)
        }
        logger.log(level: error.isFatal ? .critical : .warning, "Kafka client error", metadata: [
            "kafka.error": "\(error.name)", "kafka.detail": "\(error.message)",
        ])
        let observer = lock.withLock { () -> (@Sendable (KafkaError) -> Void)? in
            _lastError = error
            return _onClientError
        }
        observer?(error)
    }

    /// Assigns or unassigns as librdkafka asks, eagerly or cooperatively per the
    /// group's protocol, and records what changed. Before a revocation the owner's
    /// `beforeRevoke` settles what it has in flight (a batch still being written).
    func rebalance(handle: OpaquePointer, code: rd_kafka_resp_err_t, partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        let changed = [KafkaTopicPartition](partitions)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        var failure: KafkaError?
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) { failure = KafkaError(consuming: error) }
            } else {
                let code = rd_kafka_assign(handle, partitions)
                if code != RD_KAFKA_RESP_ERR_NO_ERROR { failure = KafkaError(code: code) }
            }
            assignment.formUnion(changed)
            rebalanceEvents.append(.assigned(changed))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            beforeRevoke?(changed)
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) { failure = KafkaError(consuming: error) }
            } else {
                let code = rd_kafka_assign(handle, nil)
                if code != RD_KAFKA_RESP_ERR_NO_ERROR { failure = KafkaError(code: code) }
            }
            assignment.subtract(changed)
            rebalanceEvents.append(lost ? .lost(changed) : .revoked(changed))
        default:
            // A failed rebalance: drop everything, the group will hand out partitions again.
            _ = rd_kafka_assign(handle, nil)
            let dropped = Array(assignment)
            assignment = []
            rebalanceEvents.append(.lost(dropped))
            failure = KafkaError(code: code)
        }
        logger.info("Kafka partitions \(code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked")", metadata: [
            "kafka.partitions": "\(changed.sorted().map(\.description).joined(separator: ","))",
            "kafka.protocol": "\(cooperative ? "cooperative" : "eager")",
        ])
        if let failure {
            logger.error("Kafka rebalance failed", metadata: ["kafka.error": "\(failure)"])
            lock.withLock { _lastError = failure }
        }
    }

    func delivered(_ message: rd_kafka_message_t) {
        let tag = UInt(bitPattern: message._private)
        let result: Result<KafkaDelivery, KafkaError>
        if message.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            result = .success(KafkaDelivery(
                topic: String(cString: rd_kafka_topic_name(message.rkt)), partition: message.partition, offset: message.offset))
        } else {
            result = .failure(KafkaError(code: message.err))
        }
        if !deliveries.record(tag: tag, result) {
            logger.debug("delivery report of an abandoned batch", metadata: ["kafka.tag": "\(tag)"])
        }
    }
}

/// Delivery reports of the batch being produced. Each message's opaque carries
/// the batch's generation and its index, so a late report of an earlier,
/// abandoned batch is recognised and not mistaken for one of this batch.
struct DeliveryBatch {
    private(set) var generation: UInt = 0
    private(set) var results: [Result<KafkaDelivery, KafkaError>?] = []
    private(set) var pending = 0

    mutating func start(count: Int) {
        generation = (generation + 1) & 0xFFFF_FFFF
        results = Array(repeating: nil, count: count)
        pending = count
    }

    func tag(for index: Int) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: generation << 32 | UInt(index + 1))
    }

    mutating func record(tag: UInt, _ result: Result<KafkaDelivery, KafkaError>) -> Bool {
        let index = Int(tag & 0xFFFF_FFFF) - 1
        guard tag >> 32 == generation, results.indices.contains(index), results[index] == nil else { return false }
        results[index] = result
        pending -= 1
        return true
    }

    /// A message librdkafka refused to enqueue gets no report: settle it here.
    mutating func fail(index: Int, _ error: KafkaError) {
        if results[index] == nil { pending -= 1 }
        results[index] = .failure(error)
    }
}

extension Duration {
    /// Whole milliseconds for librdkafka's `int timeout_ms`, saturated.
    var milliseconds: Int32 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: ms)
    }
}

extension String {
    /// Text librdkafka wrote into a fixed-size, NUL-terminated buffer.
    init(errorBuffer: [CChar]) {
        self.init(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
