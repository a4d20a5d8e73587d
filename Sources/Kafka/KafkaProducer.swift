import BlockingIO
import CRdKafka
import Logging

/// An idempotent producer (`enable.idempotence=true`, so `acks=all` and no
/// duplicates or reordering from its own retries) that waits for the broker's
/// acknowledgement of every message of a batch.
///
/// Blocking: call it from a `DedicatedThread`. Not thread-safe: one owner at a time.
public final class KafkaProducer {
    public let logger: Logger
    let client: RDKafkaClient

    public init(config: KafkaConfig, logger: Logger) throws(KafkaError) {
        var config = config
        config.setDefault("enable.idempotence", "true")
        config.setDefault("linger.ms", "5")
        config.setDefault("log.connection.close", "false")
        self.logger = logger
        self.client = try RDKafkaClient(role: .producer, config: config, logger: logger)
    }

    deinit {
        // Messages still queued get their chance; a producer dropped mid-outage gives up after 5 s.
        _ = rd_kafka_flush(client.handle, 5000)
    }

    /// Produces every message and waits until each has a delivery report or
    /// `timeout` passes; returns one result per message, in order. Throws only when
    /// the producer itself has failed fatally.
    public func send(_ messages: [KafkaOutboundMessage], timeout: Duration = .seconds(60)) throws(KafkaError) -> [Result<KafkaDelivery, KafkaError>] {
        assert(DedicatedThread.isCurrent, "blocking Kafka call off a DedicatedThread")
        let context = client.context
        context.deliveries.start(count: messages.count)
        for (index, message) in messages.enumerated() {
            while true {
                let code = produce(message, tag: context.deliveries.tag(for: index))
                if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // The local queue is full: serve delivery reports to make room.
                    rd_kafka_poll(client.handle, 100)
                    continue
                }
                if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                    context.deliveries.fail(index: index, KafkaError(code: code))
                }
                break
            }
        }
        // A flush sends what is queued at once, without waiting out linger.ms (the
        // batch is complete), and serves the delivery reports.
        let deadline = ContinuousClock.now + timeout
        while context.deliveries.pending > 0, ContinuousClock.now < deadline {
            _ = rd_kafka_flush(client.handle, 50)
        }
        if let fatal = client.fatalError() { throw fatal }
        return context.deliveries.results.map {
            $0 ?? .failure(KafkaError(code: RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, message: "no delivery report within \(timeout)"))
        }
    }

    /// Produces every message and returns where each landed; throws the first
    /// failure (then some of the messages may have been delivered: send them all
    /// again, consumers drop duplicates by messageId).
    @discardableResult
    public func deliver(_ messages: [KafkaOutboundMessage], timeout: Duration = .seconds(60)) throws(KafkaError) -> [KafkaDelivery] {
        var deliveries: [KafkaDelivery] = []
        deliveries.reserveCapacity(messages.count)
        for result in try send(messages, timeout: timeout) {
            switch result {
            case .success(let delivery): deliveries.append(delivery)
            case .failure(let error): throw error
            }
        }
        return deliveries
    }

    /// Waits until every queued message is delivered or failed.
    public func flush(timeout: Duration) throws(KafkaError) {
        try rd_kafka_flush(client.handle, timeout.milliseconds).check("flush")
    }

    /// The last client-level error librdkafka reported, cleared by reading it.
    public func takeLastError() -> KafkaError? { client.context.takeLastError() }

    /// Called with every client-level error librdkafka reports (a broker
    /// unreachable, all brokers down, a fatal error), on librdkafka's threads.
    public var onClientError: (@Sendable (KafkaError) -> Void)? {
        get { client.context.onClientError }
        set { client.context.onClientError = newValue }
    }

    public func partitionCount(of topic: String, timeout: Duration) throws(KafkaError) -> Int {
        try client.partitionCount(of: topic, timeout: timeout)
    }

    private func produce(_ message: KafkaOutboundMessage, tag: UnsafeMutableRawPointer?) -> rd_kafka_resp_err_t {
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                if let value = header.value {
                    value.withUnsafeBytes { _ = rd_kafka_header_add(headers, header.name, -1, $0.baseAddress, $0.count) }
                } else {
                    _ = rd_kafka_header_add(headers, header.name, -1, nil, 0)
                }
            }
        }
        // A null pointer is a null value or key: an empty array still has an address.
        let code = (message.value ?? []).withUnsafeBytes { value in
            (message.key ?? []).withUnsafeBytes { key in
                wms_rd_kafka_produce(
                    client.handle, message.topic, message.partition ?? RD_KAFKA_PARTITION_UA,
                    message.value == nil ? nil : value.baseAddress, message.value == nil ? 0 : value.count,
                    message.key == nil ? nil : key.baseAddress, message.key == nil ? 0 : key.count,
                    headers, tag)
            }
        }
        // On success librdkafka owns the headers; on failure they are still ours.
        if code != RD_KAFKA_RESP_ERR_NO_ERROR, let headers { rd_kafka_headers_destroy(headers) }
        return code
    }
}
