import Foundation
import Kafka
import Logging
import Postgres
import Redis
import WMSStore

/// The consume loop: poll a batch, prepare it (`BatchPreparer`: decode, claims,
/// Redis scripts, records), hand it to the commit lane (`BatchFinisher`:
/// PostgreSQL, release, publish) and poll the next one while the lane works;
/// commit each batch's offsets, in order, once the lane has finished it. A batch
/// prepared while another is on the lane sees that one's decisions (`InFlight`).
///
/// A batch that fails is rewound, with the one on the lane if that one failed
/// too, and polled again after a backoff, so the consumer keeps polling (and its
/// place in the group) through an outage of Kafka, Redis or PostgreSQL, and no
/// offset is committed past an event whose effects are not durable.
///
/// The protocol (this loop, `CommitLane`, `BatchPreparer`, `BatchFinisher`,
/// `HotStore` and its scripts, `InventoryStore.write`, the outbox) is modelled in
/// `Model/pipeline.pml`, which `scripts/check-model` checks with spin: change
/// them together.
///
/// Blocking: `run` owns its thread until `shouldStop` turns true.
public final class Pipeline {
    public struct Connections {
        public var consumer: KafkaConsumer
        public var producer: KafkaProducer
        public var hot: RedisClient
        public var displayCache: RedisClient
        public var postgres: PostgresConnection
        /// The commit lane's own: it writes and releases batch N while the
        /// pipeline thread prepares N+1 on `hot` and `postgres`.
        public var commitHot: RedisClient
        public var commitPostgres: PostgresConnection

        public init(consumer: KafkaConsumer, producer: KafkaProducer, hot: RedisClient, displayCache: RedisClient,
                    postgres: PostgresConnection, commitHot: RedisClient, commitPostgres: PostgresConnection) {
            self.consumer = consumer
            self.producer = producer
            self.hot = hot
            self.displayCache = displayCache
            self.postgres = postgres
            self.commitHot = commitHot
            self.commitPostgres = commitPostgres
        }
    }

    /// A batch that could not be finished or committed: rewound with the next.
    private struct FailedBatch {
        var messages: [KafkaMessage]
        var error: any Error
    }

    let settings: PipelineSettings
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    let store: InventoryStore
    let preparer: BatchPreparer
    let lane: CommitLane
    let faults: FaultPoints
    let logger: Logger
    let metrics: PipelineMetrics
    public let status: PipelineStatus
    private let lagGauges = LagGauges()
    public private(set) var totals = BatchReport()
    private var sinceSummary = BatchReport()
    private var backoff: Backoff
    /// The batch on the lane failed, found by a settle inside a poll (a revocation).
    private var failed: FailedBatch?
    let redisStateGuard: RedisStateGuard
    /// The Redis state batches build on; nil until checked (at the start, and
    /// after a batch found Redis without it).
    private var redisState: RedisStateSentinel?
    private var lastRedisStateCheck = ContinuousClock.now
    /// The group's committed offset of each partition: asked of the broker when
    /// it is assigned, then what this worker commits. The lag is measured from it.
    private var committedOffsets: [KafkaTopicPartition: Int64] = [:]

    /// `repairRedis`: how to rebuild a Redis that lost its data; without it, the
    /// worker waits for `reconcile --repair`.
    public init(settings: PipelineSettings, connections: Connections, faults: FaultPoints = FaultPoints(),
                metrics: PipelineMetrics = PipelineMetrics(), status: PipelineStatus = PipelineStatus(),
                repairRedis: RedisRepair? = nil, logger: Logger) {
        self.settings = settings
        self.metrics = metrics
        self.status = status
        self.consumer = connections.consumer
        self.producer = connections.producer
        self.store = InventoryStore(db: connections.postgres)
        self.faults = faults
        self.logger = logger
        self.backoff = Backoff(maximum: settings.maxRetryDelay)
        self.redisStateGuard = RedisStateGuard(store: store, hot: connections.hot, repair: repairRedis, logger: logger)
        self.preparer = BatchPreparer(
            settings: settings, hotStore: HotStore(hot: connections.hot, grace: settings.redisGrace, policy: settings.backorderPolicy),
            redisState: redisStateGuard, store: store, faults: faults, logger: logger)
        self.lane = CommitLane(finisher: BatchFinisher(
            settings: settings, hotStore: HotStore(hot: connections.commitHot, grace: settings.redisGrace, policy: settings.backorderPolicy),
            displayCache: DisplayCache(connection: connections.displayCache), store: InventoryStore(db: connections.commitPostgres),
            producer: connections.producer, faults: faults, logger: logger))
    }

    /// Runs until `shouldStop()` is true between batches; then the batch on the
    /// commit lane is finished and committed (or, if a store is down, left for the next run),
    /// and the consumer leaves the group.
    public func run(shouldStop: () -> Bool, sleep: (Duration) -> Void) throws {
        consumer.onClientError = PipelineMetrics.kafkaClientError
        producer.onClientError = PipelineMetrics.kafkaClientError
        try consumer.subscribe(settings.topics)
        // Partitions about to move are settled first: their offsets are committed
        // while this member still owns them.
        consumer.beforeRevoke = { [unowned self] _ in try? settle() }
        defer {
            consumer.beforeRevoke = nil
            status.update { $0.stopped = true }
        }
        warmUpProducer()
        publishLeftovers(shouldStop: shouldStop, sleep: sleep)
        var lastSummary = ContinuousClock.now
        var lastIdleRun = ContinuousClock.now
        var lastGauges = ContinuousClock.now - .seconds(60)
        var lastOutboxCount = ContinuousClock.now - .seconds(60)
        while !shouldStop() {
            let polling = ContinuousClock.now
            let batch = try consumer.poll(maxMessages: settings.maxBatchSize, maxBytes: settings.maxBatchBytes, timeout: settings.pollTimeout)
            let polled = ContinuousClock.now - polling
            status.update { $0.lastLoop = ContinuousClock.now }
            for change in consumer.takeRebalanceEvents() {
                // The Kafka wrapper logs assignments and revocations; a loss is worse.
                if case .lost(let partitions) = change {
                    logger.warning("partitions lost without a rebalance", metadata: ["kafka.partitions": "\(Self.describe(partitions))"])
                }
                if case .assigned(let partitions) = change, let offsets = try? consumer.committed(partitions, timeout: .seconds(2)) {
                    committedOffsets.merge(offsets) { $1 }
                }
                metrics.assigned(consumer.assignment.count)
                status.update { [count = consumer.assignment.count] in $0.assignedPartitions = count }
            }
            // With nothing to read, an empty batch now and then still does the work
            // that needs no message (lines left by a late cancellation).
            let idleRun = batch.isEmpty && ContinuousClock.now - lastIdleRun >= .seconds(5)
            if idleRun { lastIdleRun = ContinuousClock.now }
            if let failed {
                self.failed = nil
                try retry(after: failed.error, rewinding: failed.messages + batch, sleep: sleep)
            } else if batch.isEmpty && !idleRun {
                // Caught up: the batch on the lane is committed now, not when the next message comes.
                do {
                    try watchRedisState()
                    try settle()
                } catch {
                    try retry(after: error, rewinding: [], sleep: sleep)
                }
            } else {
                do {
                    try checkRedisState()
                    var prepared = try preparer.prepare(batch, inFlight: lane.inFlight) {
                        if !lane.waitUntilWritten() { try settle() }
                    }
                    prepared.report.stepTime["poll"] = polled
                    try settle()
                    lane.start(prepared)
                } catch {
                    try retry(after: error, rewinding: batch, sleep: sleep)
                }
            }
            let now = ContinuousClock.now
            if now - lastGauges >= .seconds(1) {
                lastGauges = now
                let countOutbox = now - lastOutboxCount >= .seconds(5)
                if countOutbox { lastOutboxCount = now }
                updateGauges(outbox: countOutbox)
            }
            if now - lastSummary >= .seconds(10) {
                logSummary()
                lastSummary = now
            }
        }
        do {
            try settle()
        } catch let error as KafkaError where error.isFatal {
            throw error
        } catch {
            logger.warning("the last batch could not be finished: the next run repeats it", metadata: ["error": "\(error)"])
        }
        logger.info("stopping: leaving the consumer group", metadata: [
            "applied": "\(totals.appliedCount)", "duplicates": "\(totals.duplicates)", "dead_letters": "\(totals.deadLetterCount)",
        ])
        try consumer.close()
    }

    /// Waits for the batch on the commit lane, if any, and commits its offsets. If
    /// it failed, or its offsets could not be committed, it is kept in `failed`
    /// (to be rewound and run again) and the error is thrown.
    private func settle() throws {
        let waiting = ContinuousClock.now
        guard let (batch, outcome) = lane.wait() else { return }
        let waited = ContinuousClock.now - waiting
        do {
            var report = try outcome.get()
            report.stepTime["wait", default: .zero] += waited
            let committing = ContinuousClock.now
            let offsets = Self.nextOffsets(batch.messages)
            try commit(offsets)
            committedOffsets.merge(offsets) { max($0, $1) }
            report.stepTime["commit"] = ContinuousClock.now - committing
            faults.reached(.afterCommit, idle: batch.messages.isEmpty)
            metrics.record(report, duration: ContinuousClock.now - batch.started, committedAt: Date().timeIntervalSince1970)
            status.update {
                $0.committed.merge(offsets) { max($0, $1) }
                $0.failingSince = nil
                $0.lastError = nil
            }
            if !batch.messages.isEmpty || !report.decisions.isEmpty {
                totals.merge(report)
                sinceSummary.merge(report)
            }
            if report.deadLetterCount > 0 {
                logger.warning("messages sent to the dead-letter topic", metadata: [
                    "count": "\(report.deadLetterCount)", "kafka.offsets": "\(Self.describe(batch.messages))",
                    "codes": "\(report.deadLetters.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: ","))",
                ])
            }
            backoff.reset()
        } catch {
            failed = FailedBatch(messages: batch.messages, error: error)
            throw error
        }
    }

    /// Before a batch, after a start or a batch that found Redis without the
    /// state it builds on: that Redis holds it, or is repaired (not ready meanwhile).
    private func checkRedisState() throws {
        guard redisState == nil else { return }
        let state = try redisStateGuard.establish { reason in
            status.update {
                $0.failingSince = $0.failingSince ?? ContinuousClock.now
                $0.lastError = reason
            }
        }
        redisState = state
        preparer.hotStore.expectedState = state
    }

    /// While there is nothing to read, Redis's state is checked every second all
    /// the same: product pages read Redis, and one that lost its data must not
    /// wait for the next event to be repaired.
    private func watchRedisState() throws {
        guard redisState != nil else { return try checkRedisState() }
        guard ContinuousClock.now - lastRedisStateCheck >= .seconds(1) else { return }
        lastRedisStateCheck = ContinuousClock.now
        try preparer.hotStore.checkState()
        _ = try redisStateGuard.checkReplication(settle: settle)
    }

    /// Commits a finished batch's offsets. Its effects are durable, so a transient
    /// refusal (the coordinator away or slow) is retried here, promptly, a few
    /// times, instead of running the batch again behind the batch backoff; what
    /// is left (the group moved on, or the broker stays away) goes to `retry`.
    private func commit(_ offsets: [KafkaTopicPartition: Int64]) throws {
        var pause = Backoff(initial: .milliseconds(50), maximum: .seconds(1))
        for attempt in 1... {
            let failure: KafkaError
            do {
                return try consumer.commit(offsets)
            } catch {
                failure = error
            }
            guard failure.isRetriable, !failure.isFatal, attempt < 6 else { throw failure }
            let delay = pause.next()
            metrics.retried(after: failure)
            logger.warning("offset commit failed, retrying it", metadata: [
                "error": "\(failure)", "attempt": "\(attempt)", "retry_in": "\(delay)",
                "kafka.partitions": "\(Self.describe(Array(offsets.keys)))",
            ])
            Thread.sleep(forTimeInterval: delay / .seconds(1))
        }
        preconditionFailure("the attempts above return or throw")
    }

    /// After a failure: settles the batch on the lane (committed if it is fine),
    /// rewinds what has to run again (with the lane's batch if that failed too),
    /// and waits a backoff. A fatal Kafka error stops the worker instead: the
    /// restart resumes from the committed offsets with new clients.
    private func retry(after error: any Error, rewinding messages: [KafkaMessage], sleep: (Duration) -> Void) throws {
        if let error = error as? KafkaError, error.isFatal {
            logger.critical("fatal Kafka error, stopping", metadata: ["error": "\(error)"])
            throw error
        }
        var messages = messages
        if RedisStateSentinel.isStateError(error) { redisState = nil }
        preparer.releaseOwed = true
        do { try settle() } catch let error as KafkaError where error.isFatal { throw error } catch {}
        if let failed {
            messages = failed.messages + messages
            self.failed = nil
        }
        let delay = backoff.next()
        metrics.retried(after: error)
        status.update {
            $0.failingSince = $0.failingSince ?? ContinuousClock.now
            $0.lastError = "\(error)"
        }
        if messages.isEmpty {
            logger.warning("idle batch failed, trying again later", metadata: ["error": "\(error)"])
        } else {
            logger.error("batch failed, retrying", metadata: [
                "error": "\(error)", "retry_in": "\(delay)", "messages": "\(messages.count)",
                "retriable": "\(Self.isRetriable(error))", "kafka.offsets": "\(Self.describe(messages))",
            ])
            try rewind(messages)
        }
        sleep(delay)
    }

    /// What the last seconds did, with the milliseconds per batch in each step:
    /// where the time goes.
    private func logSummary() {
        let summary = sinceSummary
        guard summary.appliedCount + summary.duplicates + summary.deadLetterCount > 0 else { return }
        let batches = max(1, summary.batches)
        logger.info("progress", metadata: [
            "applied": "\(summary.appliedCount)", "duplicates": "\(summary.duplicates)",
            "dead_letters": "\(summary.deadLetterCount)", "alerts": "\(summary.alerts.values.reduce(0, +))",
            "published": "\(summary.published)", "batches": "\(summary.batches)",
            "messages_per_batch": "\(summary.messages / batches)",
            "step_ms": "\(summary.stepTime.sorted { $0.key < $1.key }.map { "\($0.key)=\(($0.value / .milliseconds(1) / Double(batches) * 10).rounded() / 10)" }.joined(separator: ","))",
        ])
        sinceSummary = BatchReport()
    }

    /// Lag per partition (cached watermarks, no round trip) every second; the
    /// outbox backlog (one count over a partial index) every 5 s.
    private func updateGauges(outbox: Bool) {
        let lag = consumer.lag(committed: committedOffsets, timeout: .milliseconds(500))
        lagGauges.update(lag, assigned: consumer.assignment)
        status.update { $0.lag = lag.isEmpty ? nil : lag.values.reduce(0, +) }
        if outbox, let pending = try? store.pendingOutboxCount() {
            metrics.outbox(pending: pending)
        }
    }

    /// `topic[partition]` list for logs, sorted.
    static func describe(_ partitions: [KafkaTopicPartition]) -> String {
        partitions.sorted().map(\.description).joined(separator: ",")
    }

    /// `topic[partition]@first-last` per partition of a batch, for logs.
    static func describe(_ batch: [KafkaMessage]) -> String {
        batch.offsetRanges.sorted { $0.key < $1.key }
            .map { "\($0.key)@\($0.value.lowerBound)-\($0.value.upperBound)" }.joined(separator: ",")
    }

    /// Sets the read position back to the failed batch, so the next poll delivers it
    /// again. If that cannot be done, polling on would skip the batch: the worker
    /// stops instead, and its restart resumes from the committed offsets.
    private func rewind(_ batch: [KafkaMessage]) throws {
        var attempt = 0
        while true {
            do {
                try consumer.rewind(to: batch, timeout: .seconds(10))
                return
            } catch {
                attempt += 1
                logger.error("cannot rewind the failed batch", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                if attempt >= 3 { throw error }
            }
        }
    }

    /// The producer learns the outbound topics' partitions and leaders now, not
    /// at the first batch's publish (which took most of a second with the dev
    /// broker). A failure here (a broker down) only leaves that to the first
    /// publish: the first one ends the warm-up.
    private func warmUpProducer() {
        for topic in Set([settings.alertsTopic, settings.allocationsTopic, settings.deadLetterTopic]) {
            do {
                _ = try producer.partitionCount(of: topic, timeout: .seconds(2))
            } catch {
                logger.debug("no metadata for an outbound topic yet", metadata: ["kafka.topic": "\(topic)", "error": "\(error)"])
                return
            }
        }
    }

    /// Outbox rows a crashed run left unpublished: sent before anything else.
    /// Every batch publishes the oldest of them too; this sends a large backlog
    /// at once.
    private func publishLeftovers(shouldStop: () -> Bool, sleep: (Duration) -> Void) {
        var backoff = Backoff(maximum: settings.maxRetryDelay)
        while !shouldStop() {
            do {
                let pending = try store.allPendingOutbox(limit: 10_000)
                if !pending.isEmpty {
                    try OutboxPublisher(producer: producer, logger: logger).publish(pending)
                    try store.markPublished(pending.map(\.messageId))
                    logger.info("published outbox rows left by an earlier run", metadata: ["count": "\(pending.count)"])
                }
                return
            } catch {
                let delay = backoff.next()
                logger.error("cannot publish the outbox, retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                sleep(delay)
            }
        }
    }

    /// Per partition, the offset after the batch's last message.
    static func nextOffsets(_ batch: [KafkaMessage]) -> [KafkaTopicPartition: Int64] {
        batch.offsetRanges.mapValues { $0.upperBound + 1 }
    }

    /// Waiting can help: a store is down, busy or moving. Otherwise (a refused
    /// password, a schema too old) retrying only hides the problem.
    public static func isRetriable(_ error: any Error) -> Bool {
        switch error {
        case let error as KafkaError: error.isRetriable
        case let error as RedisError: error.isRetriable
        case let error as PostgresError: error.isRetriable
        // Redis repaired (or to be): the batch runs again on it.
        default: RedisStateSentinel.isStateError(error)
        }
    }
}

extension BatchReport {
    mutating func merge(_ other: BatchReport) {
        applied.merge(other.applied, uniquingKeysWith: +)
        duplicated.merge(other.duplicated, uniquingKeysWith: +)
        deadLetters.merge(other.deadLetters, uniquingKeysWith: +)
        alerts.merge(other.alerts, uniquingKeysWith: +)
        decisions.merge(other.decisions, uniquingKeysWith: +)
        batches += other.batches
        messages += other.messages
        stepTime.merge(other.stepTime, uniquingKeysWith: +)
        published += other.published
    }
}

/// Exponential backoff with jitter: `initial` (0.2 s) doubling up to `maximum`.
public struct Backoff: Sendable {
    public let initial: Duration
    public let maximum: Duration
    private var attempt = 0

    public init(initial: Duration = .milliseconds(200), maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
    }

    public mutating func next() -> Duration {
        defer { attempt += 1 }
        let base = initial / .seconds(1) * pow(2.0, Double(min(attempt, 16)))
        let seconds = min(maximum / .seconds(1), base) * Double.random(in: 0.8...1.2)
        return .milliseconds(Int64(seconds * 1000))
    }

    public mutating func reset() { attempt = 0 }
}
