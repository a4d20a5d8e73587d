/// Every metric the worker exports: its name, where each place that records it
/// takes it from, and its help text, which `/metrics` gives as `# HELP` (the
/// README's metrics table says more: labels and their values).
public enum WorkerMetric: String, CaseIterable, Sendable {
    case events = "wms_events_total"
    case deadLetters = "wms_dead_letters_total"
    case alerts = "wms_alerts_total"
    case allocationLines = "wms_allocation_lines_total"
    case batchMessages = "wms_batch_messages"
    case batchDuration = "wms_batch_duration_seconds"
    case batchStepDuration = "wms_batch_step_duration_seconds"
    case consumerLag = "wms_consumer_lag"
    case assignedPartitions = "wms_assigned_partitions"
    case outboxBacklog = "wms_outbox_backlog"
    case storeRetries = "wms_store_retries_total"
    case kafkaClientErrors = "wms_kafka_client_errors_total"
    case redisDataLosses = "wms_redis_data_losses_total"
    case lastBatchTimestamp = "wms_last_batch_timestamp_seconds"
    case ready = "wms_ready"
    case dependencyUp = "wms_dependency_up"

    public var name: String { rawValue }

    public var help: String {
        switch self {
        case .events: "Messages by event type and outcome (applied, duplicate, dead_lettered)."
        case .deadLetters: "Messages sent to the dead-letter topic, by error code."
        case .alerts: "Alerts raised, by alert type."
        case .allocationLines: "Order-line decisions, by outcome (allocated, backordered, cancelled)."
        case .batchMessages: "Messages per batch."
        case .batchDuration: "Seconds from a batch's poll to its offset commit."
        case .batchStepDuration: "Seconds per step of a batch."
        case .consumerLag: "Messages between the group's committed offset and the log end, per partition this worker holds."
        case .assignedPartitions: "Partitions this worker holds."
        case .outboxBacklog: "Outbound messages not yet acknowledged by the broker."
        case .storeRetries: "Batches and offset commits retried, by the store that failed them."
        case .kafkaClientErrors: "Client-level Kafka errors of the consumer and the producer, by librdkafka's error name."
        case .redisDataLosses: "Times this worker found Redis without the state it builds on, each repaired from PostgreSQL."
        case .lastBatchTimestamp: "Unix time of the last committed batch."
        case .ready: "1 when /readyz passes."
        case .dependencyUp: "1 when the health probe reaches the dependency."
        }
    }

    /// Prometheus text `exposition` with a `# HELP` line before the `# TYPE` line
    /// of each metric of the catalog (the metrics factory gives none).
    public static func withHelp(_ exposition: [UInt8]) -> [UInt8] {
        let help = Dictionary(uniqueKeysWithValues: allCases.map { ($0.name, $0.help) })
        var text = ""
        for line in String(decoding: exposition, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.split(separator: " ").dropFirst(2).first, let helpText = help[String(name)] {
                text += "# HELP \(name) \(helpText)\n"
            }
            text += line + "\n"
        }
        return Array(text.dropLast().utf8)
    }
}
