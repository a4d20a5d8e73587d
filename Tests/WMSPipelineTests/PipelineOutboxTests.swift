import Foundation
import Kafka
import Testing
import TestSupport
import WMSPipeline

/// Section 4: no outbound message is lost, and none waits for a restart.
@Suite struct PipelineOutboxTests {
    /// A row whose cause no later batch carries (a late cancellation's, after a
    /// publish that failed or a COMMIT whose outcome was unknown) is published by
    /// the next batch, whatever that batch holds.
    @Test func aRowLeftUnpublishedGoesOutWithTheNextBatchWithoutARestart() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("S")
        let leftoverID = "allocation-cancelled-late:\(f.id)-gone:O:1"
        let outcome = try await blocking {
            try f.produce([WMSEvents.receiving("\(f.id)-r1", at: "FC1", [(sku, 1)])], partition: 0)
            var planted = false
            let deadline = ContinuousClock.now + .seconds(30)
            _ = try f.run { totals in
                // Once the worker is past its start (which publishes what an earlier run left).
                if totals.appliedCount >= 1, !planted {
                    planted = true
                    _ = try? f.query("""
                        INSERT INTO outbox (message_id, topic, message_key, payload, event_id)
                        VALUES ('\(leftoverID)', '\(f.allocationsTopic)', convert_to('FC1', 'UTF8'),
                                convert_to('{"messageId":"\(leftoverID)"}', 'UTF8'), '\(f.id)-gone')
                        """)
                    _ = try? f.produce([WMSEvents.receiving("\(f.id)-r2", at: "FC1", [(sku, 1)])], partition: 0)
                }
                return totals.appliedCount >= 2 || ContinuousClock.now >= deadline
            }
            let published = try f.query("SELECT published_at IS NOT NULL AS done FROM outbox WHERE message_id = '\(leftoverID)'")
                .first?["done"].bool()
            return (planted, published, try f.allocationMessages(expecting: 1))
        }
        let (planted, published, messages) = outcome
        #expect(planted)
        #expect(published == true)
        #expect(messages.map { $0["messageId"]?.stringValue } == [leftoverID])
        try await f.schema.drop()
    }
}
