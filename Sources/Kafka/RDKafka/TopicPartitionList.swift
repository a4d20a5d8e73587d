import CRdKafka

extension Array where Element == KafkaTopicPartition {
    init(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self = (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition)
        }
    }
}

/// A librdkafka partition list built from Swift values, destroyed after `body`.
func withPartitionList<R>(
    _ entries: [(KafkaTopicPartition, offset: Int64)],
    _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws(KafkaError) -> R
) throws(KafkaError) -> R {
    let list = rd_kafka_topic_partition_list_new(Int32(entries.count))!
    defer { rd_kafka_topic_partition_list_destroy(list) }
    for (topicPartition, offset) in entries {
        rd_kafka_topic_partition_list_add(list, topicPartition.topic, topicPartition.partition).pointee.offset = offset
    }
    return try body(list)
}

/// Each partition's offset and error as librdkafka left them in `list`.
func partitionOffsets(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [(KafkaTopicPartition, offset: Int64, error: rd_kafka_resp_err_t)] {
    (0..<Int(list.pointee.cnt)).map { index in
        let element = list.pointee.elems[index]
        return (KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition), element.offset, element.err)
    }
}
