import BlockingIO
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

    /// Defect: the lock a batch takes per order (to find the lines a cancellation
    /// committed beside it covers) was one per order id across the database, so
    /// deployments sharing one (each in its schema, as the tests run) waited for
    /// each other's orders of the same id. It is per schema.
    @Test func anOrderLockOfOneSchemaDoesNotHoldAnother() async throws {
        let (first, second) = (try await FreshSchema.create(migrated: true), try await FreshSchema.create(migrated: true))
        let otherWroteMeanwhile = try await blocking {
            let holder = InventoryStore(db: try PostgresConnection(url: first.url))
            _ = try InventoryStore(db: try PostgresConnection(url: second.url))
                .adoptRedisState(RedisStateRecord(deployment: "tests", token: "tests")) { _ in }
            let otherThread = DedicatedThread(name: "other schema")
            defer { otherThread.stop() }
            var wroteMeanwhile = false
            _ = try holder.adoptRedisState(RedisStateRecord(deployment: "tests", token: "tests")) { _ in }
            try holder.write(Self.cancellation(of: "O1"), redisState: "tests") {
                // Inside the transaction, which holds O1's lock.
                let done = DispatchSemaphore(value: 0)
                otherThread.perform { [url = second.url] in
                    try? InventoryStore(db: try PostgresConnection(url: url)).write(Self.cancellation(of: "O1"), redisState: "tests")
                    done.signal()
                }
                wroteMeanwhile = done.wait(timeout: .now() + .seconds(5)) == .success
            }
            return wroteMeanwhile
        }
        #expect(otherWroteMeanwhile, "the other schema's batch waited for this schema's lock on O1")
        try await first.drop()
        try await second.drop()
    }

    /// A cancellation of every line of `order`.
    static func cancellation(of order: String) -> BatchRecords {
        var records = BatchRecords()
        records.events = [EventRecord(eventId: "cancel-\(order)", eventType: "ORDER_CANCELLED", locationId: nil, occurredAtMs: 0,
                                      canonicalJSON: "{}", digest: "00", sourceTopic: "t", sourcePartition: 0, sourceOffset: 1)]
        records.orderCancellations = [OrderCancellationRecord(orderId: order, lineId: "*", eventId: "cancel-\(order)")]
        return records
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
