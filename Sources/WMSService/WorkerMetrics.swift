import Metrics
import Prometheus

/// swift-metrics backed by a Prometheus registry, with histogram buckets suited to
/// the pipeline: batches of 1 to 2,000 messages, batches of 1 ms to 30 s.
public enum WorkerMetrics {
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
        ]
        factory.valueHistogramBuckets["wms_batch_messages"] = [1, 10, 50, 100, 250, 500, 1000, 1500, 2000]
        MetricsSystem.bootstrap(factory)
        return registry
    }
}
