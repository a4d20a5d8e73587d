import WMSDomain

/// What the pipeline needs to know beyond its connections.
public struct PipelineSettings: Sendable {
    public var topics: [String]
    public var alertsTopic = "inventory.alerts"
    public var allocationsTopic = "wms.allocations"
    public var deadLetterTopic = "wms.events.dlq"
    /// Most messages taken into one batch.
    public var maxBatchSize = 2000
    /// Most bytes of message values in one batch (a batch may pass it by one
    /// message): what one PostgreSQL statement carries stays far below its 1 GB limit.
    public var maxBatchBytes = 32 * 1024 * 1024
    /// How long a poll waits for the first message of a batch.
    public var pollTimeout: Duration = .milliseconds(100)
    /// How long Redis keeps what an event wrote for deduplication and order
    /// decisions (its claim, marks, order lines, pick tallies) once the event is
    /// committed in PostgreSQL; before that, they never expire. PostgreSQL
    /// remembers every eventId and order line forever; the grace only has to cover
    /// a batch of another worker that looked PostgreSQL up before the commit.
    public var redisGrace: Duration = .seconds(300)
    public var varianceThresholds = VarianceThresholds()
    /// How waiting order lines are filled when stock grows.
    public var backorderPolicy = BackorderPolicy.strictFIFO
    /// Longest wait between two attempts at a failing batch.
    public var maxRetryDelay: Duration = .seconds(30)

    public init(topics: [String]) {
        self.topics = topics
    }
}
