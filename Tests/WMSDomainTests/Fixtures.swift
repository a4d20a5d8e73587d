import WMSDomain

/// Valid messages of every event type, as JSON objects to edit in tests.
enum Fixtures {
    static let eventId = "evt-0001"
    static let timestamp = "2024-05-01T12:00:00Z"
    static let timestampMs: Int64 = 1_714_564_800_000

    static let items: JSONValue = [["sku": "SKU-1", "quantity": 5], ["sku": "SKU-2", "quantity": 2]]

    /// A valid message of `type` with two item lines (or two order lines).
    static func message(_ type: EventType) -> [String: JSONValue] {
        var fields: [String: JSONValue] = [
            "eventId": .string(eventId), "eventType": .string(type.rawValue), "timestamp": .string(timestamp),
        ]
        if type.isWMS { fields["locationId"] = "FC-1" }
        switch type {
        case .receivingComplete:
            fields["purchaseOrderId"] = "PO-9"
            fields["items"] = items
        case .pickComplete, .packComplete:
            fields["orderId"] = "ORD-1"
            fields["items"] = items
        case .shipComplete:
            fields["orderId"] = "ORD-1"
            fields["shipmentId"] = "SHP-1"
            fields["items"] = items
        case .cycleCountAdjustment:
            fields["sku"] = "SKU-1"
            fields["expectedCount"] = 100
            fields["actualCount"] = 97
            fields["reason"] = "recount"
            fields["approvedBy"] = "supervisor-7"
            fields["auditId"] = "AUD-3"
        case .damageReport:
            fields["reason"] = "forklift"
            fields["items"] = items
        case .transferShipped:
            fields["transferId"] = "TR-1"
            fields["toLocationId"] = "FC-2"
            fields["items"] = items
        case .transferReceived:
            fields["transferId"] = "TR-1"
            fields["fromLocationId"] = "FC-2"
            fields["items"] = items
        case .orderConfirmed:
            fields["orderId"] = "ORD-1"
            fields["lines"] = [
                ["lineId": "L1", "sku": "SKU-1", "locationId": "FC-1", "quantity": 3, "reservationId": "RES-1"],
                ["lineId": "L2", "sku": "SKU-2", "locationId": "FC-2", "quantity": 1],
            ]
        case .orderCancelled:
            fields["orderId"] = "ORD-1"
            fields["lines"] = [["lineId": "L1"], ["lineId": "L2"]]
        }
        return fields
    }

    static func bytes(_ fields: [String: JSONValue]) -> [UInt8] {
        JSONValue.object(fields).serialized(canonical: true)
    }

    static func decode(_ fields: [String: JSONValue]) -> Result<DecodedEvent, BadEvent> {
        EventDecoder.decode(bytes(fields))
    }

    /// The decoded event of a message that must be valid.
    static func event(_ fields: [String: JSONValue]) throws -> InboundEvent {
        try decode(fields).get().event
    }

    static func event(_ type: EventType) throws -> InboundEvent {
        try event(message(type))
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}
