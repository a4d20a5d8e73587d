import Foundation
import Postgres
import Testing
import TestSupport
import WMSStore

/// The outbox in PostgreSQL: the order rows are published in, and header bytes.
@Suite struct OutboxStoreTests {
    /// Rows a worker of the schema before (version 3) left unpublished keep
    /// their place and their headers through the upgrade: by batch, and within a
    /// batch an allocation before a cancellation; rows written after go after.
    @Test func rowsLeftByAnEarlierReleaseKeepTheirOrderAndHeaders() async throws {
        let schema = try await FreshSchema.create()
        let pending = try await blocking {
            let db = try PostgresConnection(url: schema.url)
            try Migrator(migrations: try Migrator().migrations.filter { $0.version <= 3 }).migrate(db)
            try db.execute(script: """
                INSERT INTO outbox (message_id, topic, payload, headers, created_at, published_at) VALUES
                    ('allocation-cancelled:c:O:FC1', 'a', '\\x7b7d', '[]', '2026-01-01', NULL),
                    ('dlq:t:0:0:abc', 'd', '\\x7b', '[{"name": "trace", "value": "é"}, {"name": "wms.error.code", "value": "INVALID_JSON"}]',
                     '2026-01-01', NULL),
                    ('allocation:o:O:FC1', 'a', '\\x7b7d', '[]', '2026-01-01', NULL),
                    ('variance:x', 'v', '\\x7b7d', '[]', '2025-12-31', NULL),
                    ('variance:published', 'v', '\\x7b7d', '[]', '2025-12-30', now())
                """)
            try Migrator().migrate(db)
            let store = InventoryStore(db: db)
            var later = BatchRecords()
            later.outbox = [OutboxRecord(messageId: "allocation:later:O:FC1", topic: "a", key: nil, payload: [0x7B, 0x7D], eventId: nil)]
            try store.writeOnStandingState(later)
            return try store.allPendingOutbox(limit: 10)
        }
        try await schema.drop()
        #expect(pending.map(\.messageId) == [
            "variance:x", "allocation:o:O:FC1", "dlq:t:0:0:abc", "allocation-cancelled:c:O:FC1", "allocation:later:O:FC1",
        ])
        #expect(pending.first { $0.messageId == "dlq:t:0:0:abc" }?.headers == [
            OutboxRecord.Header(name: "trace", value: [0xC3, 0xA9]), OutboxRecord.Header(name: "wms.error.code", text: "INVALID_JSON"),
        ])
    }

    /// Header values are bytes or absent: any bytes (not UTF-8, NUL) come back
    /// as they went in, in order, and an absent value stays absent.
    @Test func headerBytesAndAbsentValuesComeBackAsTheyWentIn() async throws {
        let schema = try await FreshSchema.create(migrated: true)
        let headers = [
            OutboxRecord.Header(name: "binary", value: [0x00, 0xFF, 0xFE, 0x80]),
            OutboxRecord.Header(name: "absent", value: nil),
            OutboxRecord.Header(name: "empty", value: []),
            OutboxRecord.Header(name: "text", text: "größe"),
        ]
        let pending = try await blocking {
            let store = InventoryStore(db: try PostgresConnection(url: schema.url))
            var records = BatchRecords()
            records.outbox = [OutboxRecord(messageId: "dlq:t:0:1:def", topic: "d", key: [0x00, 0xC3], payload: [0xFF], headers: headers, eventId: nil)]
            try store.writeOnStandingState(records)
            return try store.allPendingOutbox(limit: 10)
        }
        try await schema.drop()
        #expect(pending.map(\.headers) == [headers])
        #expect(pending.map(\.key) == [[0x00, 0xC3]])
    }

    /// A payload of megabytes (a dead letter keeps the original's bytes whatever
    /// their size) is written by a statement of its own: it keeps its place among
    /// the rows around it, and every byte, key and header.
    @Test func aLargePayloadKeepsItsPlaceAndItsBytes() async throws {
        let schema = try await FreshSchema.create(migrated: true)
        let large = (0..<(3 * 1_048_576 + 7)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let records = [
            OutboxRecord(messageId: "allocation:a:O:FC1", topic: "a", key: nil, payload: [0x7B, 0x7D], eventId: "a"),
            OutboxRecord(messageId: "dlq:t:0:7:abc", topic: "d", key: [0x00, 0xFF], payload: large,
                         headers: [OutboxRecord.Header(name: "wms.error.code", text: "TOO_LARGE"), OutboxRecord.Header(name: "absent", value: nil)],
                         eventId: nil),
            OutboxRecord(messageId: "dlq:t:0:8:def", topic: "d", key: nil, payload: Array(large.prefix(InventoryStore.largeOutboxPayload)), eventId: nil),
            OutboxRecord(messageId: "variance:b", topic: "v", key: [0x41], payload: [0x7B, 0x7D], eventId: "b"),
        ]
        let pending = try await blocking {
            let store = InventoryStore(db: try PostgresConnection(url: schema.url))
            var batch = BatchRecords()
            batch.outbox = records
            try store.writeOnStandingState(batch)
            try store.writeOnStandingState(batch)
            return try store.allPendingOutbox(limit: 10)
        }
        try await schema.drop()
        #expect(pending == records)
    }
}
