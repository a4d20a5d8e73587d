import Kafka
import Logging
import Redis
import WMSStore

/// Makes a prepared batch durable, on the commit lane, while the pipeline thread
/// prepares the next one: invalidate the display cache, write the batch in one
/// PostgreSQL transaction, release its Redis keys to their grace, publish its
/// outbox and wait for the broker. Each step is idempotent, so a batch that failed
/// half way (or a process killed half way) is simply prepared and finished again.
///
/// Blocking: runs on the commit lane's dedicated thread, with connections of its own.
final class BatchFinisher {
    let settings: PipelineSettings
    let hotStore: HotStore
    let displayCache: DisplayCache
    let store: InventoryStore
    let producer: KafkaProducer
    let faults: FaultPoints
    let logger: Logger

    init(settings: PipelineSettings, hotStore: HotStore, displayCache: DisplayCache, store: InventoryStore, producer: KafkaProducer,
         faults: FaultPoints, logger: Logger) {
        self.settings = settings
        self.hotStore = hotStore
        self.displayCache = displayCache
        self.store = store
        self.producer = producer
        self.faults = faults
        self.logger = logger
    }

    /// The batch's report, with the time of each step added. `written` runs once
    /// its PostgreSQL transaction has committed.
    func finish(_ batch: PreparedBatch, written: () -> Void = {}) throws -> BatchReport {
        var report = batch.report
        var clock = StepClock()
        // Before PostgreSQL: a retry after a crash past the commit may no longer
        // know what a late release touched.
        try displayCache.invalidate(skus: batch.displaySKUs)
        clock.lap("display", &report)
        faults.reached(.afterDisplayInvalidation, idle: batch.messages.isEmpty)
        try store.write(batch.records, redisState: batch.redisState, replication: batch.replication) { faults.reached(.beforePostgresCommit, idle: batch.messages.isEmpty) }
        clock.lap("postgres", &report)
        written()
        faults.reached(.afterPostgres, idle: batch.messages.isEmpty)
        try hotStore.release(batch.releases, eventKeys: batch.eventKeys)
        try store.forgetLateReleases(batch.lateReleases)
        clock.lap("release", &report)
        faults.reached(.afterRelease, idle: batch.messages.isEmpty)
        try publish(batch.records, duplicateIDs: batch.duplicateIDs, idle: batch.messages.isEmpty, clock: &clock, report: &report)
        return report
    }

    /// Publishes what the outbox holds for this batch (its own rows, and rows a
    /// crashed run left for events of this batch) and the oldest rows still
    /// unacknowledged whatever caused them (a late cancellation's, say, whose
    /// publish failed: no event brings it back), in the order they were written;
    /// waits for every acknowledgement, then marks them published. The
    /// PostgreSQL reads and writes count as step `outbox`, the broker's part as
    /// `publish`.
    private func publish(_ records: BatchRecords, duplicateIDs: [String], idle: Bool, clock: inout StepClock, report: inout BatchReport) throws {
        let pending = try store.pendingOutbox(eventIds: records.events.map(\.eventId) + duplicateIDs,
                                              messageIds: records.outbox.map(\.messageId), oldest: 1000)
        clock.lap("outbox", &report)
        guard !pending.isEmpty else { return }
        try OutboxPublisher(producer: producer, logger: logger).publish(pending)
        clock.lap("publish", &report)
        faults.reached(.afterPublish, idle: idle)
        try store.markPublished(pending.map(\.messageId))
        clock.lap("outbox", &report)
        faults.reached(.afterMarkPublished, idle: idle)
        report.published = pending.count
    }
}

/// The display cache of the product pages: the worker only deletes its entries.
struct DisplayCache {
    let connection: RedisClient

    /// Deletes the entry of every SKU, in one round trip (per node, on a cluster).
    func invalidate(skus: some Collection<String>) throws {
        try connection.unlink(skus.map { RedisKeys.display(sku: $0) })
    }
}
