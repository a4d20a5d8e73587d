import Foundation
import Postgres
import Testing
import TestSupport
import WMSStore

/// A pending cancellation is released once in PostgreSQL, whoever writes it: two
/// workers that both read it from `pending_cancellations`, or a batch retried
/// after a COMMIT whose outcome it never saw, write the same record twice.
@Suite struct LateCancellationTests {
    @Test func aPendingLineWrittenTwiceIsReleasedOnce() async throws {
        let schema = try await FreshSchema.create(migrated: true)
        let (ledgerRows, allocated, status, pending) = try await blocking {
            let db = try PostgresConnection(url: schema.url)
            let records = try Self.pendingLine(db, levels: true)
            let store = InventoryStore(db: db)
            try store.writeOnStandingState(records)
            try store.writeOnStandingState(records)
            return (try db.query("SELECT count(*) FROM inventory_transactions WHERE event_id = 'cancel-1'").first![0].int(),
                    try db.query("SELECT allocated FROM inventory_levels WHERE sku = 'S'").first![0].int(),
                    try db.query("SELECT status FROM allocations WHERE order_id = 'O1'").first![0].string(),
                    try db.query("SELECT count(*) FROM pending_cancellations").first![0].int())
        }
        #expect(ledgerRows == 1)
        #expect(allocated == 0)
        #expect(status == "cancelled")
        #expect(pending == 0)
        try await schema.drop()
    }

    /// Defect: the release lowered `allocated` with a plain UPDATE, so it was lost
    /// when the SKU and location had no levels row yet (its confirmation is what
    /// creates it, and that may commit beside this one).
    @Test func aReleaseWithNoLevelsRowYetCreatesIt() async throws {
        let schema = try await FreshSchema.create(migrated: true)
        let (ledger, allocated) = try await blocking {
            let db = try PostgresConnection(url: schema.url)
            let records = try Self.pendingLine(db, levels: false)
            try InventoryStore(db: db).writeOnStandingState(records)
            return (try db.query("SELECT sum(d_allocated) FROM inventory_transactions WHERE sku = 'S'").first![0].int(),
                    try db.query("SELECT allocated FROM inventory_levels WHERE sku = 'S'").first.map { try $0[0].int() })
        }
        // The levels agree with the ledger.
        #expect(ledger == -3)
        #expect(allocated == -3)
        try await schema.drop()
    }

    /// Line 1 of order O1 (3 of S at FC1) allocated and pending its release by
    /// `cancel-1`; with or without a levels row. The records that release it.
    static func pendingLine(_ db: PostgresConnection, levels: Bool) throws -> BatchRecords {
        try db.execute(script: """
            INSERT INTO inventory_events (event_id, event_type, occurred_at, payload, payload_digest, source_topic, source_partition, source_offset)
            VALUES ('cancel-1', 'ORDER_CANCELLED', now(), '{}', '\\x00', 't', 0, 1);
            INSERT INTO allocations (order_id, line_id, sku, location_id, quantity, decision, status, confirmed_by)
            VALUES ('O1', '1', 'S', 'FC1', 3, 'available', 'allocated', 'confirm-1');
            INSERT INTO pending_cancellations (order_id, line_id, sku, location_id, quantity, status, cancel_event_id)
            VALUES ('O1', '1', 'S', 'FC1', 3, 'allocated', 'cancel-1');
            """ + (levels ? "INSERT INTO inventory_levels (sku, location_id, on_hand, allocated) VALUES ('S', 'FC1', 10, 3);" : ""))
        var records = BatchRecords()
        records.lateCancellations = [LateCancellationRecord(pending: PendingCancellation(
            line: StoredOrderLine(lineId: "1", sku: "S", locationId: "FC1", quantity: 3, status: "allocated"),
            orderId: "O1", cancelEventId: "cancel-1"), released: 3, picksUsed: 0)]
        return records
    }
}
