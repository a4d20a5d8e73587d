import Kafka
import WMSDomain
import WMSStore

/// The messages the worker publishes (contract, sections 5 and 6), as outbox rows.
/// Each messageId is derived from what caused the message, so a message made again
/// after a crash has the same id and consumers can drop the duplicate.
enum OutboundMessages {
    static func varianceAlertID(eventId: String) -> String { "variance:\(eventId)" }

    static func negativeAlertID(eventId: String, sku: String, locationId: String, bucket: String) -> String {
        "negative:\(eventId):\(sku):\(locationId):\(bucket)"
    }

    enum AllocationKind: String {
        case allocation = "ALLOCATION"
        case cancelled = "ALLOCATION_CANCELLED"
    }

    struct AllocationLine {
        var lineId: String
        var sku: String
        var quantity: Int64
    }

    /// ALLOCATION or ALLOCATION_CANCELLED: the lines of one order at one location
    /// that one event allocated or released, keyed by location for the WMS.
    static func allocation(_ kind: AllocationKind, orderId: String, locationId: String, lines: [AllocationLine],
                           causedBy eventId: String, atMs: Int64, topic: String, messageId: String? = nil) -> OutboxRecord {
        let messageId = messageId ?? (kind == .allocation ? DerivedID.allocation : DerivedID.allocationCancelled)(eventId, orderId, locationId)
        let payload: JSONValue = .object([
            "messageId": .string(messageId),
            "type": .string(kind.rawValue),
            "orderId": .string(orderId),
            "locationId": .string(locationId),
            "lines": .array(lines.map { .object(["lineId": .string($0.lineId), "sku": .string($0.sku), "quantity": .integer($0.quantity)]) }),
            "causedBy": .string(eventId),
            kind == .allocation ? "allocatedAt" : "cancelledAt": .string(RFC3339.format(epochMilliseconds: atMs)),
        ])
        return OutboxRecord(messageId: messageId, topic: topic, key: Array(locationId.utf8),
                            payload: payload.serialized(canonical: true), eventId: eventId)
    }

    /// The source offset, and a digest of the bytes: a topic recreated with the
    /// same offsets gets new ids.
    static func deadLetterID(topic: String, partition: Int32, offset: Int64, value: [UInt8]) -> String {
        "dlq:\(topic):\(partition):\(offset):\(SHA256.hex(value).prefix(12))"
    }

    static func alert(_ alert: AlertRecord, topic: String) -> OutboxRecord {
        var fields: [String: JSONValue] = [
            "messageId": .string(alert.messageId),
            "type": .string(alert.alertType),
            "severity": "high",
            "sku": .string(alert.sku),
            "locationId": .string(alert.locationId),
            "eventId": .string(alert.eventId),
            "raisedAt": .string(RFC3339.format(epochMilliseconds: alert.raisedAtMs)),
        ]
        switch alert.kind {
        case .variance(let count):
            fields["expectedCount"] = .integer(count.expectedCount)
            fields["actualCount"] = .integer(count.actualCount)
            fields["variance"] = .integer(count.variance)
            fields["percentVariance"] = JSONValue(count.percentVariance)
        case .negative(let bucket, let value):
            fields["bucket"] = .string(bucket)
            fields["value"] = .integer(value)
        }
        return OutboxRecord(messageId: alert.messageId, topic: topic, key: Array(alert.sku.utf8),
                            payload: JSONValue.object(fields).serialized(canonical: true), eventId: alert.eventId)
    }

    /// The original bytes and key, with the headers of section 6. A message the
    /// dead-letter topic would refuse (value, key and headers over `maxBytes`) has
    /// its value cut to the first 64 KiB, and its key to 1 KiB, and is marked.
    static func deadLetter(_ message: KafkaMessage, error: BadEvent, topic: String, maxBytes: Int) -> OutboxRecord {
        let messageId = deadLetterID(topic: message.topic, partition: message.partition, offset: message.offset, value: message.value)
        var headers = [
            OutboxRecord.Header(name: "wms.error.code", value: error.code.rawValue),
            OutboxRecord.Header(name: "wms.error.detail", value: error.detail),
            OutboxRecord.Header(name: "wms.source.topic", value: message.topic),
            OutboxRecord.Header(name: "wms.source.partition", value: String(message.partition)),
            OutboxRecord.Header(name: "wms.source.offset", value: String(message.offset)),
            OutboxRecord.Header(name: "wms.message.id", value: messageId),
        ]
        var value = message.value
        var key = message.key
        let headerBytes = headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        if value.count + (key?.count ?? 0) + headerBytes > maxBytes {
            value = Array(value.prefix(64 * 1024))
            key = key.map { Array($0.prefix(1024)) }
            headers.append(OutboxRecord.Header(name: "wms.error.truncated", value: "true"))
        }
        return OutboxRecord(messageId: messageId, topic: topic, key: key, payload: value, headers: headers, eventId: error.eventId)
    }

    static func kafkaMessage(_ record: OutboxRecord) -> KafkaOutboundMessage {
        KafkaOutboundMessage(topic: record.topic, key: record.key, value: record.payload,
                             headers: record.headers.map { KafkaHeader(name: $0.name, string: $0.value) })
    }
}
