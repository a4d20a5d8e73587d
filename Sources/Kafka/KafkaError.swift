import CRdKafka

/// An error from librdkafka (or from this wrapper around it), with the native
/// error code, whether retrying can help, and where in our code it was raised.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` value; negative codes are client-side.
    public let code: Int32
    /// librdkafka's symbolic name, such as `_TRANSPORT` or `UNKNOWN_MEMBER_ID`.
    public let name: String
    public let message: String
    /// The client cannot go on (an idempotent producer lost its guarantees, ...):
    /// it must be destroyed and created again.
    public let isFatal: Bool
    /// The same call can succeed later (a broker down, a coordinator moving, a timeout).
    public let isRetriable: Bool
    public let file: String
    public let line: UInt

    init(code: rd_kafka_resp_err_t, message: String? = nil, isFatal: Bool? = nil, isRetriable: Bool? = nil,
         file: String = #fileID, line: UInt = #line) {
        self.code = code.rawValue
        self.name = String(cString: rd_kafka_err2name(code))
        self.message = message ?? String(cString: rd_kafka_err2str(code))
        self.isFatal = isFatal ?? (code == RD_KAFKA_RESP_ERR__FATAL)
        self.isRetriable = isRetriable ?? Self.retriableCodes.contains(code.rawValue)
        self.file = file
        self.line = line
    }

    /// Takes over an `rd_kafka_error_t`, reading its flags, and destroys it.
    init(consuming error: OpaquePointer, file: String = #fileID, line: UInt = #line) {
        defer { rd_kafka_error_destroy(error) }
        self.init(code: rd_kafka_error_code(error), message: String(cString: rd_kafka_error_string(error)),
                  isFatal: rd_kafka_error_is_fatal(error) != 0,
                  isRetriable: rd_kafka_error_is_retriable(error) != 0 || Self.retriableCodes.contains(rd_kafka_error_code(error).rawValue),
                  file: file, line: line)
    }

    /// An error of this wrapper's own making (bad configuration, misuse).
    static func client(_ message: String, code: rd_kafka_resp_err_t = RD_KAFKA_RESP_ERR__INVALID_ARG,
                       file: String = #fileID, line: UInt = #line) -> KafkaError {
        KafkaError(code: code, message: message, isFatal: false, isRetriable: false, file: file, line: line)
    }

    /// Transient conditions: the broker or coordinator is away, moving, or slow.
    static let retriableCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TIMED_OUT,
        RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__WAIT_COORD,
        RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__IN_PROGRESS,
        RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS, RD_KAFKA_RESP_ERR__WAIT_CACHE, RD_KAFKA_RESP_ERR__NODE_UPDATE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR, RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND,
        RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
    ].reduce(into: Set<Int32>()) { $0.insert($1.rawValue) }

    /// The message is larger than the topic or the producer accepts: refused by the
    /// broker (the topic's `max.message.bytes`, or a segment) or by librdkafka
    /// itself (the producer's `message.max.bytes`), with the same codes. Sending it
    /// again as it is cannot succeed.
    public var isMessageTooLarge: Bool {
        code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue || code == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE.rawValue
    }

    public var description: String {
        "Kafka error \(name) (\(code))\(isFatal ? " [fatal]" : isRetriable ? " [retriable]" : ""): \(message)"
    }
}

extension rd_kafka_resp_err_t {
    /// Throws unless this is `RD_KAFKA_RESP_ERR_NO_ERROR`.
    func check(_ context: @autoclosure () -> String, file: String = #fileID, line: UInt = #line) throws(KafkaError) {
        guard self != RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        throw KafkaError(code: self, message: "\(context()): \(String(cString: rd_kafka_err2str(self)))", file: file, line: line)
    }
}
