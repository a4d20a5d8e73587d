import Foundation
import Kafka
import Testing
import TestSupport
import WMSPipeline

/// Each event type's effect on both stores, as section 2 of the contract says.
@Suite struct PipelineEffectTests {
    @Test func everyWMSEventTypeMovesBothStoresTheSame() async throws {
        let f = try await PipelineFixture.create()
        let (a, b) = (f.sku("A"), f.sku("B"))
        let events = [
            WMSEvents.receiving("\(f.id)-1", at: "FC1", [(a, 100), (b, 40)]),
            WMSEvents.pick("\(f.id)-2", at: "FC1", [(a, 10)]),
            WMSEvents.pack("\(f.id)-3", at: "FC1", [(a, 10)]),
            WMSEvents.ship("\(f.id)-4", at: "FC1", [(a, 6)]),
            WMSEvents.damage("\(f.id)-5", at: "FC1", [(b, 3)]),
            WMSEvents.cycleCount("\(f.id)-6", at: "FC1", sku: b, expected: 37, actual: 35),
            WMSEvents.transferShipped("\(f.id)-7", from: "FC1", to: "FC2", [(a, 20), (b, 5)]),
            WMSEvents.transferReceived("\(f.id)-8", at: "FC2", from: "FC1", [(a, 15)]),
        ]
        let (report, postgres, redis) = try await blocking {
            try f.produce(events, partition: 0)
            let report = try f.run(untilSeen: events.count)
            let postgres = try f.postgresLevels()
            return (report, postgres, try f.redisLevels(postgres.keys))
        }
        #expect(report.appliedCount == 8)
        // onHand allocated reserved damaged picked inTransitIn inTransitOut
        let expected: [String: [Int64]] = [
            "\(a)@FC1": [100 - 10 - 20, -10, 0, 0, 10 - 6, 0, 20 - 15],
            "\(b)@FC1": [40 - 3 - 2 - 5, 0, 0, 3, 0, 0, 5],
            "\(a)@FC2": [15, 0, 0, 0, 0, 20 - 15, 0],
            "\(b)@FC2": [0, 0, 0, 0, 0, 5, 0],
        ]
        #expect(postgres == expected)
        for (key, levels) in expected {
            // Redis holds the same, and available = onHand - allocated - reserved.
            #expect(redis[key] == levels + [levels[0] - levels[1] - levels[2]], "\(key)")
        }
        let ledger = try await blocking { try f.query("SELECT count(*) AS n FROM inventory_transactions").first!["n"].int() }
        // One row per line and location: 2 + 1 + 1 + 1 + 1 + 1 + 2*2 + 1*2.
        #expect(ledger == 13)
        try await f.schema.drop()
    }

    @Test func cycleCountsRecordDriftAndRaiseVarianceAlertsPastEachThreshold() async throws {
        let f = try await PipelineFixture.create()
        let (small, over10, over5pct, fromZero) = (f.sku("small"), f.sku("over10"), f.sku("pct"), f.sku("zero"))
        let events = [
            WMSEvents.receiving("\(f.id)-r", at: "FC1", [(small, 1000), (over10, 1000), (over5pct, 100)]),
            // 3 of 1000: under both thresholds. The worker holds 1000, the WMS expected 990: drift 10.
            WMSEvents.cycleCount("\(f.id)-c1", at: "FC1", sku: small, expected: 990, actual: 993),
            // 11 of 1000 units: over 10 units, under 5%.
            WMSEvents.cycleCount("\(f.id)-c2", at: "FC1", sku: over10, expected: 1000, actual: 989),
            // 6 of 100: under 10 units, over 5%.
            WMSEvents.cycleCount("\(f.id)-c3", at: "FC1", sku: over5pct, expected: 100, actual: 106),
            // Nothing expected, something found.
            WMSEvents.cycleCount("\(f.id)-c4", at: "FC2", sku: fromZero, expected: 0, actual: 2),
        ]
        let (alerts, adjustments) = try await blocking {
            try f.produce(events, partition: 0)
            _ = try f.run(untilSeen: events.count)
            let adjustments = try f.query("SELECT event_id, variance, worker_on_hand, mirror_drift FROM inventory_adjustments ORDER BY event_id").rows
                .map { [try $0[0].string(), String(try $0[1].int()), String(try $0[2].int()), String(try $0[3].int())] }
            return (try f.readAll(f.alertsTopic, expecting: 3), adjustments)
        }
        #expect(adjustments == [
            ["\(f.id)-c1", "3", "1000", "10"], ["\(f.id)-c2", "-11", "1000", "0"],
            ["\(f.id)-c3", "6", "100", "0"], ["\(f.id)-c4", "2", "0", "0"],
        ])
        let bodies = try alerts.map { try JSONSerialization.jsonObject(with: Data($0.value)) as! [String: Any] }
        #expect(Set(bodies.map { $0["eventId"] as! String }) == ["\(f.id)-c2", "\(f.id)-c3", "\(f.id)-c4"])
        for body in bodies {
            #expect(body["type"] as? String == "INVENTORY_VARIANCE_ALERT")
            #expect(body["severity"] as? String == "high")
            #expect(body["messageId"] as? String == "variance:\(body["eventId"]!)")
        }
        let pct = try #require(bodies.first { $0["eventId"] as? String == "\(f.id)-c3" })
        #expect(pct["variance"] as? Int == 6)
        #expect(pct["percentVariance"] as? Double == 0.06)
        let zero = try #require(bodies.first { $0["eventId"] as? String == "\(f.id)-c4" })
        #expect(zero["percentVariance"] is NSNull)
        try await f.schema.drop()
    }

    @Test func aBucketGoingBelowZeroRaisesOneAlertPerCrossing() async throws {
        let f = try await PipelineFixture.create()
        let sku = f.sku("neg")
        let events = [
            WMSEvents.receiving("\(f.id)-1", at: "FC1", [(sku, 5)]),
            // onHand 5 -> -3 and available 5 -> 5: onHand crosses; available is
            // onHand - allocated, so -3 - (-8) = 5.
            WMSEvents.pick("\(f.id)-2", at: "FC1", [(sku, 8)]),
            // Already below zero: no second onHand alert. available 5 -> -2 crosses.
            WMSEvents.damage("\(f.id)-3", at: "FC1", [(sku, 7)]),
        ]
        let (alerts, levels) = try await blocking {
            try f.produce(events, partition: 0)
            _ = try f.run(untilSeen: events.count)
            return (try f.readAll(f.alertsTopic, expecting: 2), try f.postgresLevels())
        }
        #expect(levels["\(sku)@FC1"]?[0] == -10)
        let bodies = try alerts.map { try JSONSerialization.jsonObject(with: Data($0.value)) as! [String: Any] }
        let seen = Set(bodies.map { "\($0["eventId"]!)/\($0["bucket"]!)/\($0["value"]!)" })
        #expect(seen == ["\(f.id)-2/onHand/-3", "\(f.id)-3/available/-2"])
        #expect(bodies.allSatisfy { $0["type"] as? String == "INVENTORY_NEGATIVE_ALERT" })
        try await f.schema.drop()
    }
}
