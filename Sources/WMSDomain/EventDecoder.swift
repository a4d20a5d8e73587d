/// Turns a Kafka message value into an `InboundEvent`, or says why it is a bad
/// event (section 6 of the contract), applying every rule of section 2.
///
/// Checks run in a stable order and the first violation is reported: size,
/// JSON, eventType, the rest of the envelope, then the body in the order of the
/// contract's tables.
public enum EventDecoder {
    public static let maxMessageBytes = 1_048_576

    public static func decode(_ bytes: [UInt8]) -> Result<DecodedEvent, BadEvent> {
        guard bytes.count <= maxMessageBytes else {
            return .failure(BadEvent(
                code: .tooLarge, detail: "message of \(bytes.count) bytes is over the limit of \(maxMessageBytes) bytes"))
        }
        let message: JSONValue
        do {
            message = try JSONValue.parse(bytes)
        } catch {
            return .failure(BadEvent(code: .invalidJSON, detail: error.description))
        }
        guard let fields = message.objectValue else {
            return .failure(BadEvent(code: .invalidJSON, detail: "message must be a JSON object, got \(message.excerpt)"))
        }
        let root = FieldReader(fields: fields, location: .root)
        // Read up front so that every bad event with a valid eventId carries it.
        let eventId = Result { () throws(FieldViolation) in try root.token("eventId", .identifier) }
        do throws(FieldViolation) {
            let event = try decodeEvent(root, eventId: eventId)
            let canonicalJSON = message.serialized(canonical: true, reservingCapacity: bytes.count)
            return .success(DecodedEvent(event: event, canonicalJSON: canonicalJSON, digest: SHA256.hex(canonicalJSON)))
        } catch {
            return .failure(BadEvent(code: error.code, detail: error.detail, eventId: try? eventId.get()))
        }
    }

    private static func decodeEvent(_ root: FieldReader, eventId: Result<String, FieldViolation>) throws(FieldViolation) -> InboundEvent {
        let type = try eventType(root)
        let eventId = try eventId.get()
        let (timestamp, occurredAtMs) = try self.timestamp(root)
        let locationId = type.isWMS
            ? try root.token("locationId", .locationId)
            : try root.optionalToken("locationId", .locationId)
        let source = try self.source(root)
        return InboundEvent(
            eventId: eventId, type: type, timestamp: timestamp, occurredAtMs: occurredAtMs,
            locationId: locationId, source: source, body: try body(of: type, root))
    }

    private static func eventType(_ root: FieldReader) throws(FieldViolation) -> EventType {
        let value = try root.required("eventType")
        guard let name = value.stringValue else {
            throw root.violation("eventType", mustBe: "a string naming the event type", got: value)
        }
        guard let type = EventType(rawValue: name) else {
            throw root.violation("eventType", "unknown event type \(value.excerpt)", code: .unknownEventType)
        }
        return type
    }

    private static func timestamp(_ root: FieldReader) throws(FieldViolation) -> (String, Int64) {
        let value = try root.required("timestamp")
        guard let text = value.stringValue, let milliseconds = RFC3339.epochMilliseconds(text) else {
            throw root.violation("timestamp", mustBe: "an RFC 3339 date-time with offset, like 2024-05-01T12:00:00Z", got: value)
        }
        return (text, milliseconds)
    }

    private static func source(_ root: FieldReader) throws(FieldViolation) -> String? {
        guard let value = root.optional("source") else { return nil }
        guard let text = value.stringValue, FieldRules.sources.contains(text) else {
            throw root.violation("source", mustBe: "one of " + FieldRules.sources.sorted().joined(separator: ", "), got: value)
        }
        return text
    }

    private static func body(of type: EventType, _ root: FieldReader) throws(FieldViolation) -> EventBody {
        switch type {
        case .receivingComplete:
            return .receiving(purchaseOrderId: try root.optionalToken("purchaseOrderId", .identifier), items: try items(root))
        case .pickComplete:
            return .pick(orderId: try root.token("orderId", .identifier), items: try items(root))
        case .packComplete:
            return .pack(orderId: try root.token("orderId", .identifier), items: try items(root))
        case .shipComplete:
            return .ship(
                orderId: try root.token("orderId", .identifier),
                shipmentId: try root.optionalToken("shipmentId", .identifier),
                items: try items(root))
        case .cycleCountAdjustment:
            return .cycleCount(CycleCount(
                sku: try root.token("sku", .sku),
                expectedCount: try root.integer("expectedCount", in: FieldRules.count),
                actualCount: try root.integer("actualCount", in: FieldRules.count),
                reason: try root.freeText("reason", maxLength: FieldRules.reasonMaxLength),
                approvedBy: try root.optionalToken("approvedBy", .identifier),
                auditId: try root.optionalToken("auditId", .identifier)))
        case .damageReport:
            return .damage(reason: try root.freeText("reason", maxLength: FieldRules.reasonMaxLength), items: try items(root))
        case .transferShipped:
            return .transferShipped(
                transferId: try root.token("transferId", .identifier),
                toLocationId: try root.token("toLocationId", .locationId),
                items: try items(root))
        case .transferReceived:
            return .transferReceived(
                transferId: try root.token("transferId", .identifier),
                fromLocationId: try root.token("fromLocationId", .locationId),
                items: try items(root))
        case .orderConfirmed:
            let orderId = try root.token("orderId", .identifier)
            let lines = try root.objectList("lines") { (line) throws(FieldViolation) in
                OrderLine(
                    lineId: try line.token("lineId", .identifier),
                    sku: try line.token("sku", .sku),
                    locationId: try line.token("locationId", .locationId),
                    quantity: try line.integer("quantity", in: FieldRules.quantity),
                    reservationId: try line.optionalToken("reservationId", .identifier))
            }
            // Each line is decided once, under its lineId: two lines with one id
            // would be two decisions for one line.
            var seen = Set<String>()
            for line in lines where !seen.insert(line.lineId).inserted {
                throw root.violation("lines", "must not repeat a lineId, got \(line.lineId) twice")
            }
            return .orderConfirmed(orderId: orderId, lines: lines)
        case .orderCancelled:
            return .orderCancelled(
                orderId: try root.token("orderId", .identifier),
                lineIds: try root.optionalObjectList("lines") { (line) throws(FieldViolation) in
                    try line.token("lineId", .identifier)
                })
        }
    }

    private static func items(_ root: FieldReader) throws(FieldViolation) -> [ItemLine] {
        try root.objectList("items") { (item) throws(FieldViolation) in
            ItemLine(sku: try item.token("sku", .sku), quantity: try item.integer("quantity", in: FieldRules.quantity))
        }
    }
}
