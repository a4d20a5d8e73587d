import Foundation
import Kafka
import Logging
import WMSDomain
import WMSStore

/// What became of a batch's messages: for logs and metrics.
public struct BatchReport: Sendable {
    public var applied: [EventType: Int] = [:]
    /// Events already applied (a redelivery, a resend, a replay).
    public var duplicates = 0
    public var deadLetters: [BadEventCode: Int] = [:]
    public var alerts: [String: Int] = [:]
    public var published = 0

    public var appliedCount: Int { applied.values.reduce(0, +) }
    public var deadLetterCount: Int { deadLetters.values.reduce(0, +) }
}

/// Takes one batch of messages through every step of the contract (section 4):
/// find what PostgreSQL already holds, run the Redis scripts for the rest, write the
/// batch in one transaction, invalidate the display cache, publish the outbox and
/// wait for the broker. Each step is idempotent, so a batch that failed half way
/// (or a process killed half way) is simply run again.
///
/// Blocking: runs on the pipeline's dedicated thread.
final class BatchProcessor {
    let settings: PipelineSettings
    let hotStore: HotStore
    let store: InventoryStore
    let producer: KafkaProducer
    let faults: FaultPoints
    let logger: Logger
    let now: @Sendable () -> Int64

    init(settings: PipelineSettings, hotStore: HotStore, store: InventoryStore, producer: KafkaProducer,
         faults: FaultPoints, logger: Logger, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.settings = settings
        self.hotStore = hotStore
        self.store = store
        self.producer = producer
        self.faults = faults
        self.logger = logger
        self.now = now
    }

    /// What the batch decided for each message.
    enum Disposition {
        case apply(DecodedEvent)
        case alreadyApplied(eventId: String)
        case deadLetter(BadEvent)
    }

    func process(_ messages: [KafkaMessage]) throws -> BatchReport {
        let decoded = messages.map { EventDecoder.decode($0.value) }
        let candidateIDs = Array(Set(decoded.compactMap { try? $0.get().event.eventId }))
        let stored = try store.existingDigests(of: candidateIDs)
        faults.reached(.afterLookup)

        var dispositions = Self.plan(decoded, stored: stored)
        let nowMs = now()
        let (changes, owners) = skuChanges(dispositions)
        let outcomes = try hotStore.apply(changes, nowMs: nowMs)
        faults.reached(.afterRedis)

        var report = BatchReport()
        let records = buildRecords(messages, &dispositions, changes: changes, owners: owners, outcomes: outcomes,
                                   nowMs: nowMs, report: &report)
        try store.write(records)
        faults.reached(.afterPostgres)

        let touched = Set(records.ledger.filter(\.touchesLevels).map(\.effect.sku))
        try hotStore.invalidateDisplay(skus: touched)
        faults.reached(.afterDisplayInvalidation)

        report.published = try publish(records, dispositions)
        return report
    }

    // MARK: Steps

    /// Decides per message, in offset order: a bad message is a dead letter; an
    /// eventId PostgreSQL (or an earlier message of this batch) holds with the same
    /// digest is a duplicate, with another digest a conflict; the rest is applied.
    static func plan(_ decoded: [Result<DecodedEvent, BadEvent>], stored: [String: String]) -> [Disposition] {
        var seen = stored
        return decoded.map { result in
            switch result {
            case .failure(let bad):
                return .deadLetter(bad)
            case .success(let event):
                let id = event.event.eventId
                guard let digest = seen[id] else {
                    seen[id] = event.digest
                    return .apply(event)
                }
                return digest == event.digest
                    ? .alreadyApplied(eventId: id)
                    : .deadLetter(BadEvent(code: .eventIdConflict, detail: "eventId \(id) was applied before with another payload", eventId: id))
            }
        }
    }

    /// One script call per event and SKU, with the deltas per location summed. A
    /// pack moves nothing and needs none; a cycle count always runs, even with no
    /// variance, to learn the worker's onHand for the mirror drift.
    private func skuChanges(_ dispositions: [Disposition]) -> ([SKUChange], owners: [Int]) {
        var changes: [SKUChange] = []
        var owners: [Int] = []
        for (index, disposition) in dispositions.enumerated() {
            guard case .apply(let decoded) = disposition else { continue }
            let event = decoded.event
            var bySKU: [String: [(locationId: String, deltas: Deltas)]] = [:]
            var order: [String] = []
            for effect in event.effects where !effect.deltas.isZero || event.type == .cycleCountAdjustment {
                if bySKU[effect.sku] == nil { order.append(effect.sku) }
                var locations = bySKU[effect.sku, default: []]
                if let at = locations.firstIndex(where: { $0.locationId == effect.locationId }) {
                    locations[at].deltas = locations[at].deltas + effect.deltas
                } else {
                    locations.append((effect.locationId, effect.deltas))
                }
                bySKU[effect.sku] = locations
            }
            for sku in order {
                changes.append(SKUChange(eventId: event.eventId, digest: decoded.digest, sku: sku, locations: bySKU[sku]!))
                owners.append(index)
            }
        }
        return (changes, owners)
    }

    private func buildRecords(_ messages: [KafkaMessage], _ dispositions: inout [Disposition], changes: [SKUChange],
                              owners: [Int], outcomes: [SKUChangeOutcome], nowMs: Int64, report: inout BatchReport) -> BatchRecords {
        // Each event's script outcomes; a conflict on any SKU makes the event a conflict.
        var outcomesByMessage: [Int: [(SKUChange, [LocationChange])]] = [:]
        for (position, outcome) in outcomes.enumerated() {
            let index = owners[position]
            switch outcome {
            case .conflict:
                guard case .apply(let decoded) = dispositions[index] else { continue }
                if outcomesByMessage[index]?.isEmpty == false {
                    logger.error("eventId applied to some SKUs with another payload at the same moment", metadata: ["event_id": "\(decoded.event.eventId)"])
                }
                dispositions[index] = .deadLetter(BadEvent(
                    code: .eventIdConflict, detail: "eventId \(decoded.event.eventId) was applied before with another payload",
                    eventId: decoded.event.eventId))
            case .applied(let locations), .alreadyApplied(let locations):
                outcomesByMessage[index, default: []].append((changes[position], locations))
            }
        }

        var records = BatchRecords()
        for (index, disposition) in dispositions.enumerated() {
            let message = messages[index]
            switch disposition {
            case .alreadyApplied:
                report.duplicates += 1
            case .deadLetter(let error):
                let outbox = OutboundMessages.deadLetter(message, error: error, topic: settings.deadLetterTopic, maxBytes: settings.deadLetterMaxBytes)
                records.outbox.append(outbox)
                records.deadLetters.append(DeadLetterRecord(sourceTopic: message.topic, sourcePartition: message.partition,
                                                            sourceOffset: message.offset, error: error, messageId: outbox.messageId))
                report.deadLetters[error.code, default: 0] += 1
            case .apply(let decoded):
                let event = decoded.event
                report.applied[event.type, default: 0] += 1
                records.events.append(EventRecord(
                    eventId: event.eventId, eventType: event.type.rawValue, locationId: event.locationId,
                    occurredAtMs: event.occurredAtMs, canonicalJSON: String(decoding: decoded.canonicalJSON, as: UTF8.self),
                    digest: decoded.digest, sourceTopic: message.topic, sourcePartition: message.partition, sourceOffset: message.offset))
                for effect in event.effects {
                    records.ledger.append(LedgerRecord(eventId: event.eventId, eventType: event.type.rawValue, effect: effect,
                                                       touchesLevels: !effect.deltas.isZero || event.type == .cycleCountAdjustment))
                }
                let found = outcomesByMessage[index] ?? []
                addAlerts(for: event, found: found, nowMs: nowMs, into: &records, report: &report)
            }
        }
        return records
    }

    private func addAlerts(for event: InboundEvent, found: [(SKUChange, [LocationChange])], nowMs: Int64,
                           into records: inout BatchRecords, report: inout BatchReport) {
        var alerts: [AlertRecord] = []
        if case .cycleCount(let count) = event.body, let location = event.locationId {
            let workerOnHand = found.first { $0.0.sku == count.sku }?.1.first?.onHandBefore ?? 0
            records.adjustments.append(AdjustmentRecord(eventId: event.eventId, locationId: location, count: count,
                                                        workerOnHand: workerOnHand, occurredAtMs: event.occurredAtMs))
            if count.exceeds(settings.varianceThresholds) {
                alerts.append(AlertRecord(messageId: OutboundMessages.varianceAlertID(eventId: event.eventId), eventId: event.eventId,
                                          sku: count.sku, locationId: location, kind: .variance(count), raisedAtMs: nowMs))
            }
        }
        // A bucket crossing from zero or above to below zero, as the script saw it.
        for (change, locations) in found {
            for (location, seen) in zip(change.locations, locations) {
                for (bucket, before, after) in [("onHand", seen.onHandBefore, seen.onHandAfter),
                                                ("available", seen.availableBefore, seen.availableAfter)] where before >= 0 && after < 0 {
                    alerts.append(AlertRecord(
                        messageId: OutboundMessages.negativeAlertID(eventId: event.eventId, sku: change.sku, locationId: location.locationId, bucket: bucket),
                        eventId: event.eventId, sku: change.sku, locationId: location.locationId,
                        kind: .negative(bucket: bucket, value: after), raisedAtMs: nowMs))
                }
            }
        }
        for alert in alerts {
            records.alerts.append(alert)
            records.outbox.append(OutboundMessages.alert(alert, topic: settings.alertsTopic))
            report.alerts[alert.alertType, default: 0] += 1
        }
    }

    /// Publishes what the outbox holds for this batch (its own rows, and rows a
    /// crashed run left for events of this batch), waits for every acknowledgement,
    /// then marks them published.
    private func publish(_ records: BatchRecords, _ dispositions: [Disposition]) throws -> Int {
        let duplicateIDs = dispositions.compactMap { if case .alreadyApplied(let id) = $0 { id } else { nil } }
        // Rows exist only where this batch wrote some, or where an earlier run did.
        guard !records.outbox.isEmpty || !duplicateIDs.isEmpty else { return 0 }
        let pending = try store.pendingOutbox(eventIds: records.events.map(\.eventId) + duplicateIDs,
                                              messageIds: records.outbox.map(\.messageId))
        guard !pending.isEmpty else { return 0 }
        try producer.deliver(pending.map(OutboundMessages.kafkaMessage))
        faults.reached(.afterPublish)
        try store.markPublished(pending.map(\.messageId))
        faults.reached(.afterMarkPublished)
        return pending.count
    }
}
