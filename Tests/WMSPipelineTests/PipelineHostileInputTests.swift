import Foundation
import Kafka
import Redis
import Testing
import TestSupport
import WMSDomain
import WMSPipeline
import WMSSimulation

/// Issue 11: hostile input mixed into valid traffic. Every class of
/// `HostileClass` (the simulator's generator) lands where the contract says:
/// a bad one in the dead-letter topic with its code and headers, a valid one
/// applied; the good events around them are all applied, exactly once.
@Suite struct PipelineHostileInputTests {
    /// The generator and the worker's decoder agree, with no server: each bad
    /// message fails with its class's code; each valid one is read as the eventId
    /// and quantity changes its class adds to the day's arithmetic. (Section 2's
    /// rules, stated twice, checking each other.)
    @Test func everyClassOfTheGeneratorDecodesAsItsClassSays() throws {
        var day = WarehouseDay(seed: 3, skus: 6, locations: 3, prefix: "HX-")
        day.generate(count: 300)
        var generator = HostileMessages(seed: 5, day: day)
        var digests: [String: String] = [:]
        for event in day.events { digests[event.id] = try EventDecoder.decode(Array(event.json.utf8)).get().digest }
        for kind in HostileClass.allCases {
            for _ in 0..<20 {
                let hostile = generator.make(kind, after: day.events.count - 1)
                let decoded = EventDecoder.decode(hostile.message.value ?? [])
                switch (kind.outcome, decoded) {
                case (.deadLetter(let code), .failure(let bad)):
                    #expect(bad.code.rawValue == code, "\(kind): \(bad)")
                case (.deadLetter, .success(let event)):
                    // A conflict is valid on its own: its eventId was applied with another payload.
                    let original = hostile.waitsForEventId ?? hostile.message.key.map { String(decoding: $0, as: UTF8.self) }
                    #expect([.conflictOnItsPartition, .conflictOnAnotherTopic].contains(kind), "\(kind) decoded: \(event.event.eventId)")
                    #expect(original == event.event.eventId && digests[event.event.eventId] != event.digest, "\(kind)")
                case (.applied, .failure(let bad)):
                    Issue.record("\(kind) is valid, the decoder says \(bad)")
                case (.applied, .success(let event)):
                    #expect(event.event.eventId == hostile.eventId, "\(kind)")
                    if kind == .equivalentResend {
                        #expect(digests[event.event.eventId] == event.digest, "a resend is the same payload")
                        continue
                    }
                    #expect(Self.sums(event.event.effects.map { ($0.sku, $0.locationId, $0.deltas.values) })
                                == Self.sums(hostile.changes.map { ($0.sku, $0.location, $0.deltas) }), "\(kind)")
                    let lines = if case .orderConfirmed(_, let lines) = event.event.body { lines.count } else { 0 }
                    #expect(lines == hostile.orderLines, "\(kind)")
                }
            }
        }
    }

    /// Quantity changes summed per "SKU@LOCATION", zero sums kept (a count of no variance still makes a row).
    static func sums(_ changes: [(String, String, [Int64])]) -> [String: [Int64]] {
        changes.reduce(into: [:]) { sums, change in
            let key = "\(change.0)@\(change.1)"
            sums[key] = zip(sums[key] ?? Array(repeating: 0, count: 7), change.2).map(+)
        }
    }

    /// Through the real broker, Redis and PostgreSQL: a generated day on one
    /// partition with every class three times spread through it (and the
    /// conflicts on another topic once their originals are applied). Each bad
    /// message is dead-lettered once with its code, its original key, headers and
    /// bytes and the worker's headers; each valid one is applied; the day's
    /// arithmetic holds in PostgreSQL and Redis; every good event is applied by
    /// the run that read it.
    @Test func hostileInputAmongAWarehouseDayLandsWhereTheContractSays() async throws {
        let f = try await PipelineFixture.create(topics: 2)
        var day = WarehouseDay(seed: 11, skus: 6, locations: 3, prefix: f.sku(""))
        day.generate(count: 240)
        let events = day.events
        var generator = HostileMessages(seed: 13, day: day, topics: f.topics)
        let kinds = Array(repeating: HostileClass.allCases, count: 3).flatMap { $0 }
        var stream: [KafkaOutboundMessage] = []
        var hostile: [(index: Int, message: HostileMessage)] = []
        var conflictsLater: [HostileMessage] = []
        for (index, event) in events.enumerated() {
            stream.append(KafkaOutboundMessage(topic: f.topics[0], partition: 0, key: Array(event.id.utf8), value: Array(event.json.utf8)))
            // Spread evenly: the hostile messages owed by this point of the day.
            while hostile.count + conflictsLater.count < kinds.count * (index + 1) / events.count {
                var made = generator.make(kinds[hostile.count + conflictsLater.count], after: index)
                made.message.partition = 0
                if made.waitsForEventId != nil {
                    made.message.topic = f.topics[1]
                    conflictsLater.append(made)
                    continue
                }
                made.message.topic = f.topics[0]
                day.account(for: made)
                hostile.append((stream.count, made))
                stream.append(made.message)
            }
        }
        let expectedDeadLetters = hostile.filter(\.message.kind.isBad).count + conflictsLater.count
        let (sent, later) = (hostile, conflictsLater)
        let (records, dead, firstRun, secondRun) = try await blocking { [stream] in
            let deliveries = try f.produce(messages: stream)
            let firstRun = try f.run(untilSeen: stream.count, timeout: .seconds(120))
            // Only now: the contract keeps the payload applied first, and nothing orders two topics.
            let laterDeliveries = try f.produce(messages: later.map(\.message))
            let secondRun = try f.run(untilSeen: later.count)
            let records = sent.map { HostileRecord($0.message, at: deliveries[$0.index]) }
                + zip(later, laterDeliveries).map { HostileRecord($0, at: $1) }
            return (records, try f.readAll(f.deadLetterTopic, expecting: expectedDeadLetters), firstRun, secondRun)
        }
        #expect(Set(records.map(\.kind)) == Set(HostileClass.allCases))
        #expect(firstRun.appliedCount == day.eventCount, "every good event applied by the run that read it")
        #expect(firstRun.deadLetterCount + secondRun.deadLetterCount == expectedDeadLetters)
        #expect(secondRun.appliedCount == 0)

        // Each bad message: one dead letter, right in every part; no valid one dead-lettered.
        let deadBySource = Dictionary(grouping: dead) { HostileRecord.sourcePosition(of: $0) ?? "none" }
        #expect(dead.count == expectedDeadLetters)
        let applied = try await blocking {
            Set(try f.query("SELECT event_id FROM inventory_events").rows.map { try $0[0].string() })
        }
        for record in records {
            let letters = deadBySource[record.position] ?? []
            switch record.kind.outcome {
            case .deadLetter:
                #expect(letters.count == 1, "\(record.kind) at \(record.position): \(letters.count) dead letters")
                for letter in letters { #expect(record.problems(with: letter) == [], "\(record.kind) at \(record.position)") }
            case .applied:
                #expect(letters.isEmpty, "\(record.kind) dead-lettered: \(letters.first.map(record.problems(with:)) ?? [])")
                #expect(record.eventId.map(applied.contains) == true, "\(record.kind) \(record.eventId ?? "") applied")
            }
        }
        // The check above can fail: a dead letter with another code, without the
        // original headers, or with other bytes is caught.
        if let record = records.first(where: { $0.kind == .headersOnly }), var letter = deadBySource[record.position]?.first {
            letter.headers = letter.headers.map { $0.name == "wms.error.code" ? KafkaHeader(name: $0.name, string: "INVALID_FIELD") : $0 }
            #expect(record.problems(with: letter).contains { $0.hasPrefix("code INVALID_FIELD, expected INVALID_JSON") })
            letter.headers.removeFirst()
            letter.value = Array("{}".utf8)
            #expect(record.problems(with: letter).count >= 3)
        } else {
            Issue.record("no headers-only dead letter")
        }

        // The day's arithmetic, the valid hostile messages' included, in both stores.
        let expectedLevels = day.expected
        let (postgres, redis, allocatedByOrders, decided) = try await blocking {
            let postgres = try f.postgresLevels()
            var allocated: [String: Int64] = [:]
            for row in try f.query("""
                SELECT sku, location_id, sum(quantity - released) FROM allocations WHERE allocated_by IS NOT NULL GROUP BY 1, 2
                """).rows {
                allocated["\(try row[0].string())@\(try row[1].string())"] = try row[2].int()
            }
            let decided = try f.query("SELECT count(*) FROM allocations").first![0].int()
            return (postgres, try f.redisLevels(Set(postgres.keys).union(expectedLevels.keys)), allocated, decided)
        }
        #expect(decided == Int64(day.orderLines))
        for key in Set(postgres.keys).union(day.expected.keys) {
            var expected = day.expected[key] ?? Array(repeating: 0, count: 7)
            expected[1] += allocatedByOrders[key] ?? 0
            #expect(postgres[key] == expected, "\(key) in PostgreSQL")
            #expect(redis[key] == expected + [expected[0] - expected[1] - expected[2]], "\(key) in Redis")
        }
        try await f.schema.drop()
    }
}
