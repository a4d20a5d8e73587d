/// The inbound events of the contract (section 2), decoded and validated.

public enum EventType: String, Sendable, Hashable, CaseIterable {
    case receivingComplete = "RECEIVING_COMPLETE"
    case pickComplete = "PICK_COMPLETE"
    case packComplete = "PACK_COMPLETE"
    case shipComplete = "SHIP_COMPLETE"
    case cycleCountAdjustment = "CYCLE_COUNT_ADJUSTMENT"
    case damageReport = "DAMAGE_REPORT"
    case transferShipped = "TRANSFER_SHIPPED"
    case transferReceived = "TRANSFER_RECEIVED"
    case orderConfirmed = "ORDER_CONFIRMED"
    case orderCancelled = "ORDER_CANCELLED"

    /// WMS events happen at a fulfillment center and require `locationId`.
    public var isWMS: Bool { self != .orderConfirmed && self != .orderCancelled }
}

/// One `{sku, quantity}` entry of `items`.
public struct ItemLine: Sendable, Hashable {
    public var sku: String
    public var quantity: Int64

    public init(sku: String, quantity: Int64) {
        self.sku = sku
        self.quantity = quantity
    }
}

public struct CycleCount: Sendable, Hashable {
    public var sku: String
    public var expectedCount: Int64
    public var actualCount: Int64
    public var reason: String
    public var approvedBy: String?
    public var auditId: String?

    public init(sku: String, expectedCount: Int64, actualCount: Int64, reason: String, approvedBy: String? = nil, auditId: String? = nil) {
        self.sku = sku
        self.expectedCount = expectedCount
        self.actualCount = actualCount
        self.reason = reason
        self.approvedBy = approvedBy
        self.auditId = auditId
    }

    /// actualCount - expectedCount: what the count changes onHand by.
    public var variance: Int64 { actualCount - expectedCount }
}

/// One line of ORDER_CONFIRMED.
public struct OrderLine: Sendable, Hashable {
    public var lineId: String
    public var sku: String
    public var locationId: String
    public var quantity: Int64
    public var reservationId: String?

    public init(lineId: String, sku: String, locationId: String, quantity: Int64, reservationId: String? = nil) {
        self.lineId = lineId
        self.sku = sku
        self.locationId = locationId
        self.quantity = quantity
        self.reservationId = reservationId
    }
}

/// What each event type carries beyond the envelope.
public enum EventBody: Sendable, Hashable {
    case receiving(purchaseOrderId: String?, items: [ItemLine])
    case pick(orderId: String, items: [ItemLine])
    case pack(orderId: String, items: [ItemLine])
    case ship(orderId: String, shipmentId: String?, items: [ItemLine])
    case cycleCount(CycleCount)
    case damage(reason: String, items: [ItemLine])
    case transferShipped(transferId: String, toLocationId: String, items: [ItemLine])
    case transferReceived(transferId: String, fromLocationId: String, items: [ItemLine])
    case orderConfirmed(orderId: String, lines: [OrderLine])
    /// `lineIds` nil: every line of the order.
    case orderCancelled(orderId: String, lineIds: [String]?)
}

public struct InboundEvent: Sendable, Hashable {
    public var eventId: String
    public var type: EventType
    /// The `timestamp` field as sent (RFC 3339 with offset).
    public var timestamp: String
    /// The same instant in milliseconds since the Unix epoch.
    public var occurredAtMs: Int64
    /// Required for WMS events; absent or present for order events.
    public var locationId: String?
    public var source: String?
    public var body: EventBody

    public init(eventId: String, type: EventType, timestamp: String, occurredAtMs: Int64, locationId: String?, source: String?, body: EventBody) {
        self.eventId = eventId
        self.type = type
        self.timestamp = timestamp
        self.occurredAtMs = occurredAtMs
        self.locationId = locationId
        self.source = source
        self.body = body
    }
}

/// The error codes of section 6, as they appear in the `wms.error.code` header.
public enum BadEventCode: String, Sendable, Hashable, CaseIterable {
    case invalidJSON = "INVALID_JSON"
    case invalidField = "INVALID_FIELD"
    case unknownEventType = "UNKNOWN_EVENT_TYPE"
    case tooLarge = "TOO_LARGE"
    case eventIdConflict = "EVENT_ID_CONFLICT"
}

/// Why a message is not an event the worker can apply. `detail` is readable and
/// names the field (`items[3].quantity: must be an integer from 1 to 1000000000`).
public struct BadEvent: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: BadEventCode
    public var detail: String
    /// The eventId, when the message had a valid one.
    public var eventId: String?

    public init(code: BadEventCode, detail: String, eventId: String? = nil) {
        self.code = code
        self.detail = detail
        self.eventId = eventId
    }

    public var description: String { "\(code.rawValue): \(detail)" }

    /// The same eventId arrived before with another payload (section 4).
    public static func conflict(eventId: String) -> BadEvent {
        BadEvent(code: .eventIdConflict, detail: "eventId \(eventId) was applied before with another payload", eventId: eventId)
    }
}

/// A message that passed every rule: the event, and the payload's canonical JSON
/// (keys sorted, no insignificant whitespace) with its SHA-256, which is what
/// "the same payload" means (section 4).
public struct DecodedEvent: Sendable, Hashable {
    public var event: InboundEvent
    public var canonicalJSON: [UInt8]
    /// Lower-case hex SHA-256 of `canonicalJSON`.
    public var digest: String

    public init(event: InboundEvent, canonicalJSON: [UInt8], digest: String) {
        self.event = event
        self.canonicalJSON = canonicalJSON
        self.digest = digest
    }
}
