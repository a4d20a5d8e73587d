import WMSDomain

/// What one batch writes to PostgreSQL, built by the pipeline and written in one
/// transaction by `InventoryStore.write(_:)`.
public struct BatchRecords: Sendable {
    public var events: [EventRecord] = []
    public var ledger: [LedgerRecord] = []
    public var adjustments: [AdjustmentRecord] = []
    public var alerts: [AlertRecord] = []
    public var outbox: [OutboxRecord] = []
    public var deadLetters: [DeadLetterRecord] = []
    /// Order lines decided at confirmation (new rows of `allocations`, and of
    /// `backorders` for the queued ones).
    public var confirmedLines: [ConfirmedLineRecord] = []
    /// Backordered lines allocated since, by the event that freed the stock.
    public var filledLines: [FilledLineRecord] = []
    /// Lines released or dropped by a cancellation.
    public var cancelledLines: [LineChangeRecord] = []
    public var orderCancellations: [OrderCancellationRecord] = []
    /// Lines of `pending_cancellations` released in this batch.
    public var lateCancellations: [LateCancellationRecord] = []
    /// Lines a cancellation's scripts (or a late release's) gave back in Redis
    /// before PostgreSQL held them as Redis did: their confirmation, or the fill
    /// that allocated them, is still in flight. Left to the late path, which
    /// records them once it does, so that their ALLOCATION goes first.
    public var releasedBeforeAllocation: [LateCancellationRecord] = []

    public init() {}

    public var isEmpty: Bool {
        events.isEmpty && outbox.isEmpty && deadLetters.isEmpty && lateCancellations.isEmpty && releasedBeforeAllocation.isEmpty
    }

    /// The records without those of the batch's events that are not in `inserted`
    /// (dead letters and late cancellations belong to no event of the batch).
    func keeping(insertedEvents inserted: Set<String>) -> BatchRecords {
        let skipped = Set(events.map(\.eventId)).subtracting(inserted)
        guard !skipped.isEmpty else { return self }
        let deadLetterIDs = Set(deadLetters.map(\.messageId))
        var kept = self
        kept.adjustments.removeAll { skipped.contains($0.eventId) }
        kept.alerts.removeAll { skipped.contains($0.eventId) }
        kept.outbox.removeAll { $0.eventId.map(skipped.contains) == true && !deadLetterIDs.contains($0.messageId) }
        kept.confirmedLines.removeAll { skipped.contains($0.eventId) }
        kept.filledLines.removeAll { skipped.contains($0.eventId) }
        kept.cancelledLines.removeAll { skipped.contains($0.eventId) }
        kept.orderCancellations.removeAll { skipped.contains($0.eventId) }
        kept.releasedBeforeAllocation.removeAll { skipped.contains($0.pending.cancelEventId) }
        return kept
    }
}

public struct EventRecord: Sendable {
    public var eventId: String
    public var eventType: String
    public var locationId: String?
    public var occurredAtMs: Int64
    /// The payload's canonical JSON and its SHA-256 (hex).
    public var canonicalJSON: String
    public var digest: String
    public var sourceTopic: String
    public var sourcePartition: Int32
    public var sourceOffset: Int64

    public init(eventId: String, eventType: String, locationId: String?, occurredAtMs: Int64, canonicalJSON: String,
                digest: String, sourceTopic: String, sourcePartition: Int32, sourceOffset: Int64) {
        self.eventId = eventId
        self.eventType = eventType
        self.locationId = locationId
        self.occurredAtMs = occurredAtMs
        self.canonicalJSON = canonicalJSON
        self.digest = digest
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
    }
}

/// One ledger row: an event line's changes at one location, or an allocation or
/// release the event caused.
public struct LedgerRecord: Sendable {
    public var eventId: String
    public var eventType: String
    /// The row's place among the event's rows.
    public var entryNo: Int
    /// The event line it comes from, if any.
    public var lineNo: Int?
    public var orderId: String?
    public var lineId: String?
    public var sku: String
    public var locationId: String
    public var deltas: Deltas
    /// False for ledger-only lines (a pack): they leave `inventory_levels` alone.
    public var touchesLevels: Bool

    public init(eventId: String, eventType: String, entryNo: Int, lineNo: Int?, orderId: String? = nil, lineId: String? = nil,
                sku: String, locationId: String, deltas: Deltas, touchesLevels: Bool) {
        self.eventId = eventId
        self.eventType = eventType
        self.entryNo = entryNo
        self.lineNo = lineNo
        self.orderId = orderId
        self.lineId = lineId
        self.sku = sku
        self.locationId = locationId
        self.deltas = deltas
        self.touchesLevels = touchesLevels
    }
}

public struct ConfirmedLineRecord: Sendable {
    public var orderId: String
    public var line: OrderLine
    /// reservation, available, backordered or cancelled.
    public var decision: String
    /// allocated, backordered or cancelled.
    public var status: String
    public var queueSeq: Int64
    public var eventId: String

    public init(orderId: String, line: OrderLine, decision: String, status: String, queueSeq: Int64, eventId: String) {
        self.orderId = orderId
        self.line = line
        self.decision = decision
        self.status = status
        self.queueSeq = queueSeq
        self.eventId = eventId
    }
}

/// A backordered line allocated by the event that freed the stock. It carries
/// the whole line: its confirmation may not be in PostgreSQL yet (another worker,
/// or a replay after a crash, writes it later).
public struct FilledLineRecord: Sendable {
    public var orderId: String
    public var lineId: String
    public var sku: String
    public var locationId: String
    public var quantity: Int64
    public var confirmedBy: String
    public var eventId: String

    public init(orderId: String, lineId: String, sku: String, locationId: String, quantity: Int64, confirmedBy: String, eventId: String) {
        self.orderId = orderId
        self.lineId = lineId
        self.sku = sku
        self.locationId = locationId
        self.quantity = quantity
        self.confirmedBy = confirmedBy
        self.eventId = eventId
    }
}

/// A line cancelled.
public struct LineChangeRecord: Sendable {
    public var orderId: String
    public var lineId: String
    public var eventId: String
    /// For a cancellation: what it gave back (0 for a dropped backorder).
    public var released: Int64
    /// The picks it accounted for.
    public var picksUsed: Int64

    public init(orderId: String, lineId: String, eventId: String, released: Int64 = 0, picksUsed: Int64 = 0) {
        self.orderId = orderId
        self.lineId = lineId
        self.eventId = eventId
        self.released = released
        self.picksUsed = picksUsed
    }
}

public struct OrderCancellationRecord: Sendable {
    public var orderId: String
    /// `*`: every line of the order.
    public var lineId: String
    public var eventId: String

    public init(orderId: String, lineId: String, eventId: String) {
        self.orderId = orderId
        self.lineId = lineId
        self.eventId = eventId
    }
}

/// An order's picks of one SKU at one location, as PostgreSQL holds them: what
/// each pick event took, and what each cancelled line accounted for.
public struct PickHistory: Sendable, Equatable {
    public var byEvent: [String: Int64]
    public var usedByLine: [String: Int64]

    public init(byEvent: [String: Int64] = [:], usedByLine: [String: Int64] = [:]) {
        self.byEvent = byEvent
        self.usedByLine = usedByLine
    }
}

/// An order line as PostgreSQL holds it.
public struct StoredOrderLine: Sendable {
    public var lineId: String
    public var sku: String
    public var locationId: String
    public var quantity: Int64
    public var status: String

    public init(lineId: String, sku: String, locationId: String, quantity: Int64, status: String) {
        self.lineId = lineId
        self.sku = sku
        self.locationId = locationId
        self.quantity = quantity
        self.status = status
    }

    /// The same line, as a confirmation would give it.
    public func matches(_ line: OrderLine) -> Bool {
        sku == line.sku && locationId == line.locationId && quantity == line.quantity
    }
}

public struct AdjustmentRecord: Sendable {
    public var eventId: String
    public var locationId: String
    public var count: CycleCount
    /// The worker's onHand when the count was applied.
    public var workerOnHand: Int64
    public var occurredAtMs: Int64

    public init(eventId: String, locationId: String, count: CycleCount, workerOnHand: Int64, occurredAtMs: Int64) {
        self.eventId = eventId
        self.locationId = locationId
        self.count = count
        self.workerOnHand = workerOnHand
        self.occurredAtMs = occurredAtMs
    }

    /// How far the worker's mirror was from what the WMS expected.
    public var mirrorDrift: Int64 { workerOnHand - count.expectedCount }
}

public struct AlertRecord: Sendable {
    public enum Kind: Sendable {
        case variance(CycleCount)
        case negative(bucket: String, value: Int64)
    }

    public var messageId: String
    public var eventId: String
    public var sku: String
    public var locationId: String
    public var kind: Kind
    public var raisedAtMs: Int64

    public init(messageId: String, eventId: String, sku: String, locationId: String, kind: Kind, raisedAtMs: Int64) {
        self.messageId = messageId
        self.eventId = eventId
        self.sku = sku
        self.locationId = locationId
        self.kind = kind
        self.raisedAtMs = raisedAtMs
    }

    public var alertType: String {
        switch kind {
        case .variance: "INVENTORY_VARIANCE_ALERT"
        case .negative: "INVENTORY_NEGATIVE_ALERT"
        }
    }
}

public struct OutboxRecord: Sendable, Equatable {
    public var messageId: String
    public var topic: String
    public var key: [UInt8]?
    public var payload: [UInt8]
    public var headers: [Header]
    public var eventId: String?

    /// A Kafka header: its value is bytes, or absent.
    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: [UInt8]?
        public init(name: String, value: [UInt8]?) {
            self.name = name
            self.value = value
        }

        public init(name: String, text: String) {
            self.init(name: name, value: Array(text.utf8))
        }
    }

    public init(messageId: String, topic: String, key: [UInt8]?, payload: [UInt8], headers: [Header] = [], eventId: String?) {
        self.messageId = messageId
        self.topic = topic
        self.key = key
        self.payload = payload
        self.headers = headers
        self.eventId = eventId
    }
}

public struct DeadLetterRecord: Sendable {
    public var sourceTopic: String
    public var sourcePartition: Int32
    public var sourceOffset: Int64
    public var error: BadEvent
    public var messageId: String

    public init(sourceTopic: String, sourcePartition: Int32, sourceOffset: Int64, error: BadEvent, messageId: String) {
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
        self.error = error
        self.messageId = messageId
    }
}

/// A line a cancellation covers that was found allocated or waiting after both
/// committed (see `pending_cancellations`).
public struct PendingCancellation: Sendable {
    public var line: StoredOrderLine
    public var orderId: String
    public var cancelEventId: String
    /// Set when a script already gave the line back in Redis: only PostgreSQL is
    /// left to write, once it holds the line as Redis did. Not set for a line a
    /// late release's script gives back now: its keys are owed their expiry (0011).
    public var releasedInRedis: LineRelease?

    public init(line: StoredOrderLine, orderId: String, cancelEventId: String, releasedInRedis: LineRelease? = nil) {
        self.line = line
        self.orderId = orderId
        self.cancelEventId = cancelEventId
        self.releasedInRedis = releasedInRedis
    }
}

/// What a cancellation gave back of an allocated line, and the picks the line accounted for.
public struct LineRelease: Sendable, Equatable {
    public var released: Int64
    public var picksUsed: Int64

    public init(released: Int64, picksUsed: Int64) {
        self.released = released
        self.picksUsed = picksUsed
    }
}

/// A pending cancellation done: what it gave back. Its ledger row belongs to the
/// cancellation's event.
public struct LateCancellationRecord: Sendable {
    public var pending: PendingCancellation
    public var released: Int64
    public var picksUsed: Int64

    public init(pending: PendingCancellation, released: Int64, picksUsed: Int64) {
        self.pending = pending
        self.released = released
        self.picksUsed = picksUsed
    }
}
