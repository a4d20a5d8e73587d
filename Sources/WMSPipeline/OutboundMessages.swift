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

    static func deadLetterID(topic: String, partition: Int32, offset: Int64) -> String {
        "dlq:\(topic):\(partition):\(offset)"
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

    /// The original bytes and key, with the headers of section 6. A value the
    /// dead-letter topic would refuse is cut to its first 64 KiB and marked.
    static func deadLetter(_ message: KafkaMessage, error: BadEvent, topic: String, maxBytes: Int) -> OutboxRecord {
        let messageId = deadLetterID(topic: message.topic, partition: message.partition, offset: message.offset)
        var headers = [
            OutboxRecord.Header(name: "wms.error.code", value: error.code.rawValue),
            OutboxRecord.Header(name: "wms.error.detail", value: error.detail),
            OutboxRecord.Header(name: "wms.source.topic", value: message.topic),
            OutboxRecord.Header(name: "wms.source.partition", value: String(message.partition)),
            OutboxRecord.Header(name: "wms.source.offset", value: String(message.offset)),
            OutboxRecord.Header(name: "wms.message.id", value: messageId),
        ]
        var value = message.value
        if value.count > maxBytes {
            value = Array(value.prefix(64 * 1024))
            headers.append(OutboxRecord.Header(name: "wms.error.truncated", value: "true"))
        }
        return OutboxRecord(messageId: messageId, topic: topic, key: message.key, payload: value, headers: headers, eventId: error.eventId)
    }

    static func kafkaMessage(_ record: OutboxRecord) -> KafkaOutboundMessage {
        KafkaOutboundMessage(topic: record.topic, key: record.key, value: record.payload,
                             headers: record.headers.map { KafkaHeader(name: $0.name, string: $0.value) })
    }
}
