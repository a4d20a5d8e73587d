import CRdKafka
import Logging

/// librdkafka's in-process mock cluster: real Kafka protocol on loopback ports it
/// chooses, consumer groups and committed offsets included, with error injection.
/// The dev broker and the tests run it; production talks to real Kafka.
public final class KafkaMockCluster {
    private let host: RDKafkaClient
    private let cluster: OpaquePointer
    public let brokerCount: Int

    public init(brokers: Int = 1, logger: Logger) throws(KafkaError) {
        // The host handle never connects anywhere: silence its "no bootstrap.servers" notice.
        host = try RDKafkaClient(role: .host, config: KafkaConfig(properties: ["log_level": "4"]), logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(host.handle, Int32(brokers)) else {
            throw .client("cannot start the mock cluster")
        }
        self.cluster = cluster
        self.brokerCount = brokers
    }

    deinit { rd_kafka_mock_cluster_destroy(cluster) }

    /// `host:port,...` for `bootstrap.servers`.
    public var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(cluster)) }

    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        try rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor)).check("create topic \(name)")
    }

    /// Broker ids start at 1.
    public func setBroker(_ id: Int32, up: Bool) throws(KafkaError) {
        let code = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
        try code.check("set broker \(id) \(up ? "up" : "down")")
    }

    /// Makes broker `id` the coordinator of consumer group `group`: what a
    /// coordinator moving (its broker restarted, partitions of
    /// `__consumer_offsets` moved) looks like to the group's members.
    public func setCoordinator(ofGroup group: String, to id: Int32) throws(KafkaError) {
        try rd_kafka_mock_coordinator_set(cluster, "group", group, id).check("move the coordinator of \(group) to broker \(id)")
    }

    /// The next requests of this API (a Kafka ApiKey: 0 Produce, 1 Fetch, 8
    /// OffsetCommit, ...) fail with these error codes, one each, in order.
    public func pushRequestErrors(apiKey: Int16, errors: [Int32]) {
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, codes.count, &codes)
    }
}
