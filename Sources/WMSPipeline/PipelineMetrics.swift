import Foundation
import Kafka
import Metrics
import Postgres
import Redis
import WMSDomain

/// What the pipeline reports through swift-metrics, under names an operator can
/// alert on (the README's metrics reference lists them). Every labelled series
/// that can be known up front is created at zero, so `rate()` and alerts work
/// before the first event of a kind arrives.
public struct PipelineMetrics: Sendable {
    public static let steps = ["poll", "decode", "lookup", "claim", "redis", "records", "display", "postgres", "release", "outbox", "publish", "wait", "commit"]
    public static let stores = ["kafka", "redis", "postgres"]
    public static let alertTypes = ["INVENTORY_VARIANCE_ALERT", "INVENTORY_NEGATIVE_ALERT"]
    public static let allocationOutcomes = ["allocated", "backordered", "cancelled"]

    private let events: [String: [String: Counter]]
    private let deadLetters: [BadEventCode: Counter]
    private let alerts: [String: Counter]
    private let allocationLines: [String: Counter]
    private let storeRetries: [String: Counter]
    private let batchMessages = Recorder(label: WorkerMetric.batchMessages.name, aggregate: true)
    private let batchDuration = Timer(label: WorkerMetric.batchDuration.name)
    private let stepDurations: [String: Timer]
    private let assignedPartitions = Gauge(label: WorkerMetric.assignedPartitions.name)
    private let outboxBacklog = Gauge(label: WorkerMetric.outboxBacklog.name)
    private let lastBatch = Gauge(label: WorkerMetric.lastBatchTimestamp.name)

    public init() {
        // The series that can move: a decoded event is applied or a duplicate, a
        // dead letter counts as `unknown`.
        func series(_ type: String, _ outcomes: [String]) -> (String, [String: Counter]) {
            (type, Dictionary(uniqueKeysWithValues: outcomes.map { outcome in
                (outcome, Counter(label: WorkerMetric.events.name, dimensions: [("type", type), ("outcome", outcome)]))
            }))
        }
        events = Dictionary(uniqueKeysWithValues: EventType.allCases.map { series($0.rawValue, ["applied", "duplicate"]) }
            + [series("unknown", ["dead_lettered"])])
        deadLetters = Dictionary(uniqueKeysWithValues: BadEventCode.allCases.map {
            ($0, Counter(label: WorkerMetric.deadLetters.name, dimensions: [("code", $0.rawValue)]))
        })
        alerts = Dictionary(uniqueKeysWithValues: Self.alertTypes.map { ($0, Counter(label: WorkerMetric.alerts.name, dimensions: [("type", $0)])) })
        allocationLines = Dictionary(uniqueKeysWithValues: Self.allocationOutcomes.map {
            ($0, Counter(label: WorkerMetric.allocationLines.name, dimensions: [("outcome", $0)]))
        })
        storeRetries = Dictionary(uniqueKeysWithValues: Self.stores.map { ($0, Counter(label: WorkerMetric.storeRetries.name, dimensions: [("store", $0)])) })
        // Since the start until the first batch: "seconds since the last batch"
        // stays meaningful on a worker that has had nothing to do.
        lastBatch.record(Date().timeIntervalSince1970)
        stepDurations = Dictionary(uniqueKeysWithValues: Self.steps.map {
            ($0, Timer(label: WorkerMetric.batchStepDuration.name, dimensions: [("step", $0)]))
        })
    }

    /// A committed batch.
    func record(_ report: BatchReport, duration: Duration, committedAt: Double) {
        for (type, count) in report.applied { events[type.rawValue]?["applied"]?.increment(by: count) }
        for (type, count) in report.duplicated { events[type.rawValue]?["duplicate"]?.increment(by: count) }
        // A bad message's type is not to be trusted: dead letters count as `unknown`.
        events["unknown"]?["dead_lettered"]?.increment(by: report.deadLetterCount)
        for (code, count) in report.deadLetters { deadLetters[code]?.increment(by: count) }
        for (type, count) in report.alerts { alerts[type]?.increment(by: count) }
        for (decision, count) in report.decisions {
            allocationLines[Self.allocationOutcome(decision)]?.increment(by: count)
        }
        guard report.messages > 0 else { return }
        batchMessages.record(report.messages)
        batchDuration.record(duration: duration)
        for (step, time) in report.stepTime { stepDurations[step]?.record(duration: time) }
        lastBatch.record(committedAt)
    }

    /// Decisions as the scripts name them, folded into three outcomes.
    static func allocationOutcome(_ decision: String) -> String {
        switch decision {
        case "backordered": "backordered"
        case "cancelled", "cancelled late": "cancelled"
        default: "allocated" // reservation, available, filled
        }
    }

    /// A client-level Kafka error (broker unreachable, all brokers down, ...), by
    /// librdkafka's name for it: a bounded set.
    @Sendable static func kafkaClientError(_ error: KafkaError) {
        Counter(label: WorkerMetric.kafkaClientErrors.name, dimensions: [("error", error.name)]).increment()
    }

    /// A batch that failed and will be retried, by the store that failed it.
    func retried(after error: any Error) {
        let store = switch error {
        case is KafkaError: "kafka"
        case is RedisError: "redis"
        case let error where RedisStateSentinel.isStateError(error): "redis"
        case is PostgresError: "postgres"
        default: "other"
        }
        (storeRetries[store] ?? Counter(label: WorkerMetric.storeRetries.name, dimensions: [("store", store)])).increment()
    }

    func outbox(pending: Int) { outboxBacklog.record(pending) }

    func assigned(_ count: Int) { assignedPartitions.record(count) }
}

/// Lag per partition: one gauge each, removed when the partition moves away, so
/// the sum over the group's members stays right.
final class LagGauges {
    private var gauges: [KafkaTopicPartition: Gauge] = [:]

    func update(_ lag: [KafkaTopicPartition: Int64], assigned: Set<KafkaTopicPartition>) {
        for (partition, gauge) in gauges where !assigned.contains(partition) {
            gauge.destroy()
            gauges[partition] = nil
        }
        for (partition, value) in lag {
            let gauge = gauges[partition] ?? Gauge(label: WorkerMetric.consumerLag.name, dimensions: [
                ("topic", partition.topic), ("partition", String(partition.partition)),
            ])
            gauges[partition] = gauge
            gauge.record(value)
        }
    }
}
