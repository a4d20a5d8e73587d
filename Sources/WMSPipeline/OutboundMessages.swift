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
        "\(deadLetterIDPrefix)\(topic):\(partition):\(offset):\(SHA256.hex(value).prefix(12))"
    }

    private static let deadLetterIDPrefix = "dlq:"

    static func isDeadLetter(_ record: OutboxRecord) -> Bool { record.messageId.hasPrefix(deadLetterIDPrefix) }

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

    /// The headers the worker adds to a dead letter, in this order.
    static let deadLetterHeaderNames = [
        "wms.error.code", "wms.error.detail", "wms.source.topic", "wms.source.partition", "wms.source.offset", "wms.message.id",
    ]

    /// The original bytes, key and headers, and then the headers of section 6. It
    /// is stored whole: what the dead-letter topic accepts is learnt when it is
    /// published (see `deadLetterCuts`).
    static func deadLetter(_ message: KafkaMessage, error: BadEvent, topic: String) -> OutboxRecord {
        let messageId = deadLetterID(topic: message.topic, partition: message.partition, offset: message.offset, value: message.value)
        let facts = [error.code.rawValue, error.detail, message.topic, String(message.partition), String(message.offset), messageId]
        let headers = message.headers.map { OutboxRecord.Header(name: $0.name, value: $0.value) }
            + zip(deadLetterHeaderNames, facts).map { OutboxRecord.Header(name: $0, text: $1) }
        return OutboxRecord(messageId: messageId, topic: topic, key: message.key, payload: message.value, headers: headers, eventId: error.eventId)
    }

    /// Smaller forms of a dead letter, to try in turn when the topic refuses it as
    /// too large (section 6), each marked `wms.error.truncated: true`: the value cut
    /// to its first 64 KiB; then no value; then no value, no key and only the
    /// worker's own headers (the error, and where the message is in its topic),
    /// which any topic meant for dead letters takes: the partition moves on.
    static func deadLetterCuts(_ record: OutboxRecord) -> [OutboxRecord] {
        let truncated = OutboxRecord.Header(name: "wms.error.truncated", text: "true")
        func cut(value: [UInt8], key: [UInt8]?, headers: [OutboxRecord.Header]) -> OutboxRecord {
            var cut = record
            cut.payload = value
            cut.key = key
            // A row stored cut by an earlier release is marked already.
            cut.headers = headers.contains(truncated) ? headers : headers + [truncated]
            return cut
        }
        var cuts: [OutboxRecord] = []
        let valueCutoff = 64 * 1024
        if record.payload.count > valueCutoff {
            cuts.append(cut(value: Array(record.payload.prefix(valueCutoff)), key: record.key, headers: record.headers))
        }
        if !record.payload.isEmpty {
            cuts.append(cut(value: [], key: record.key, headers: record.headers))
        }
        cuts.append(cut(value: [], key: nil, headers: record.headers.filter { deadLetterHeaderNames.contains($0.name) }))
        return cuts
    }

    static func kafkaMessage(_ record: OutboxRecord) -> KafkaOutboundMessage {
        KafkaOutboundMessage(topic: record.topic, key: record.key, value: record.payload,
                             headers: record.headers.map { KafkaHeader(name: $0.name, value: $0.value) })
    }
}
