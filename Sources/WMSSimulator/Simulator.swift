import ArgumentParser
import BlockingIO
import Foundation
import Kafka
import Logging
import Postgres
import Redis
import Synchronization
import WMSSimulation

/// Feeds the worker a generated warehouse day and checks what it left behind: the
/// README's main job and the acceptance runs use it.
@main
struct Simulator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wms-simulator",
        abstract: "Generate warehouse events into Kafka and verify the stores against the contract's arithmetic.",
        subcommands: [Day.self, Conflicts.self, Verify.self, Probe.self])
}

/// What a generated day must leave behind, written by `day` for `verify`.
struct Expectation: Codable {
    var prefix: String
    var startedAt: String
    var events: Int
    var resends: Int
    var poison: Int
    var varianceAlerts: Int
    var orderLines: Int
    /// The buckets per "SKU@LOCATION" by the contract's arithmetic; `allocated`
    /// holds the picks only: what orders added is the worker's decision.
    var levels: [String: [Int64]]
    /// Every poison and hostile message sent, where it landed.
    var hostile: [HostileRecord] = []
    /// Conflicts on another topic that `conflicts` sends once their originals are applied.
    var heldBack: [HeldBackMessage] = []

    /// Dead letters the run must leave: the bad messages sent and held back.
    var deadLetters: Int { hostile.filter(\.kind.isBad).count + heldBack.count }

    static func read(_ path: String) throws -> Expectation {
        try JSONDecoder().decode(Expectation.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Written whole, then renamed: a reader never sees half of it.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

struct Day: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Produce a generated warehouse day to the WMS topics.")

    @Option(help: "Valid events to generate.") var events = 2000
    @Option(help: "Seed: the same seed gives the same day.") var seed: UInt64 = 1
    @Option(help: "SKUs.") var skus = 40
    @Option(help: "Fulfillment centers (at least 2).") var locations = 3
    @Option(help: "Share of messages sent again (a resend on another topic or the same one).") var resendRate = 0.01
    @Option(help: "Share of messages that are bad (poison: 7 classic classes of hostile input).") var poisonRate = 0.02
    @Option(help: "Share of the messages that are bad hostile input, of every class (`verify` checks each one's dead letter).")
    var hostileRate = 0.0
    @Option(help: "Share of the messages that are hostile but valid, to be applied (default: a quarter of --hostile-rate).")
    var validHostileRate: Double?
    @Option(help: "Only these hostile classes, comma-separated (default: every class; see `verify`'s table for the names).")
    var hostileClasses: String?
    @Option(help: "Where to write what the day must leave behind.") var expectedFile = "expected.json"
    @Option(help: "Prefix of every SKU and eventId (default: a fresh one per run).") var prefix: String?
    @Option(help: "Messages per second (default: as fast as the broker takes them).") var rate: Int?

    func validate() throws {
        guard events > 0 else { throw ValidationError("--events must be positive") }
        guard locations >= 2 else { throw ValidationError("--locations must be at least 2 (transfers move between them)") }
        guard [resendRate, poisonRate, hostileRate, validHostileRate ?? 0].allSatisfy((0...0.5).contains),
              hostileRate + (validHostileRate ?? hostileRate / 4) <= 0.5 else {
            throw ValidationError("every rate must be between 0 and 0.5, and the hostile ones add up to at most 0.5")
        }
        let unknown = hostileClassNames.filter { HostileClass(rawValue: $0) == nil }
        guard unknown.isEmpty else {
            throw ValidationError("unknown hostile classes: \(unknown.joined(separator: ", ")); the classes: "
                                  + HostileClass.allCases.map(\.rawValue).joined(separator: ", "))
        }
    }

    private var hostileClassNames: [String] {
        hostileClasses?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
    }

    /// The classes to draw from among `all`: those of --hostile-classes, if any of them is there.
    private func chosen(_ all: [HostileClass]) -> [HostileClass] {
        let names = Set(hostileClassNames)
        return names.isEmpty ? all : all.filter { names.contains($0.rawValue) }
    }

    func run() async throws {
        let brokers = try environment("WMS_KAFKA_BROKERS")
        let postgresURL = try environment("WMS_POSTGRES_URL")
        let prefix = self.prefix ?? "R\(UInt32.random(in: 0..<UInt32.max) % 100_000)-"
        var day = WarehouseDay(seed: seed, skus: skus, locations: locations, prefix: prefix)
        day.generate(count: events)
        var random = SeededRandom(seed: seed &+ 7)
        var hostileInput = HostileMessages(seed: seed &+ 11, day: day)
        // The chance per event that makes each a share of all messages (resends aside).
        let validHostileRate = self.validHostileRate ?? hostileRate / 4
        let perEvent = (bad: hostileRate / (1 - hostileRate - validHostileRate), valid: validHostileRate / (1 - hostileRate - validHostileRate))
        var outbound: [KafkaOutboundMessage] = []
        var hostile: [(index: Int, message: HostileMessage)] = []
        var heldBack: [HeldBackMessage] = []
        var resends = 0
        var poison = 0
        let topics = Array(Set(day.events.map(\.topic))).sorted()
        let (badClasses, validClasses) = (chosen(HostileClass.bad), chosen(HostileClass.valid))
        func send(_ message: HostileMessage) {
            if message.waitsForEventId != nil {
                heldBack.append(HeldBackMessage(message))
            } else {
                hostile.append((outbound.count, message))
                outbound.append(message.message)
            }
        }
        for (index, event) in day.events.enumerated() {
            outbound.append(KafkaOutboundMessage(topic: event.topic, key: Array(event.id.utf8), value: Array(event.json.utf8)))
            if random.chance(resendRate) {
                // Sent again: half on the same topic, half on another one.
                let topic = random.chance(0.5) ? event.topic : topics[random.int(0...(topics.count - 1))]
                outbound.append(KafkaOutboundMessage(topic: topic, value: Array(event.json.utf8)))
                resends += 1
            }
            if random.chance(poisonRate) {
                poison += 1
                send(hostileInput.next(from: HostileClass.poison, after: index))
            }
            if random.chance(perEvent.bad), !badClasses.isEmpty { send(hostileInput.next(from: badClasses, after: index)) }
            if random.chance(perEvent.valid), !validClasses.isEmpty {
                let valid = hostileInput.next(from: validClasses, after: index)
                day.account(for: valid)
                send(valid)
            }
        }
        let startedAt = try await DedicatedThread(name: "wms.simulator").run {
            try PostgresConnection(url: postgresURL).query("SELECT now()::text AS now").first!["now"].string()
        }
        // Written first: a script can watch the run while the messages go out. Once
        // they are out, again with where the hostile ones landed.
        var expectation = Expectation(prefix: prefix, startedAt: startedAt, events: day.eventCount, resends: resends, poison: poison,
                                      varianceAlerts: day.alertsExpected, orderLines: day.orderLines, levels: day.expected, heldBack: heldBack)
        try expectation.write(to: expectedFile)
        let messages = outbound
        let chunkSize = rate.map { max(1, $0 / 10) } ?? 5000
        let deliveries = try await DedicatedThread(name: "wms.simulator").run {
            let producer = try Self.producer(brokers: brokers)
            var deliveries: [KafkaDelivery] = []
            for chunk in stride(from: 0, to: messages.count, by: chunkSize) {
                let started = ContinuousClock.now
                deliveries += try producer.deliver(Array(messages[chunk..<min(chunk + chunkSize, messages.count)]))
                if rate != nil { Thread.sleep(until: Date() + max(0, 0.1 - (ContinuousClock.now - started) / .seconds(1))) }
            }
            return deliveries
        }
        if !hostile.isEmpty {
            expectation.hostile = hostile.map { HostileRecord($0.message, at: deliveries[$0.index]) }
            try expectation.write(to: expectedFile)
        }
        let bad = hostile.filter(\.message.kind.isBad).count - poison + heldBack.count
        let valid = hostile.filter { !$0.message.kind.isBad }.count
        print("produced \(outbound.count) messages: \(day.events.count) events, \(resends) resends, \(poison) poison, "
              + "\(bad + valid) hostile (\(bad) bad, \(valid) valid), "
              + "\(day.skus.count) SKUs at \(day.locations.joined(separator: ",")); expected state in \(expectedFile)"
              + (heldBack.isEmpty ? "" : "\n\(heldBack.count) conflicts on another topic held back: `wms-simulator conflicts` sends them once their originals are applied"))
    }

    /// The simulator's producer: lz4 keeps a large day within the dev broker's
    /// 5 MiB a partition; messages up to twice the largest hostile one.
    static func producer(brokers: String) throws -> KafkaProducer {
        try KafkaProducer(config: KafkaConfig(bootstrapServers: brokers, properties: [
            "compression.type": "lz4", "message.max.bytes": String(2 * HostileMessages.largestSent),
        ]), logger: Logger(label: "wms-simulator"))
    }
}

/// The second half of a hostile day: the conflicts on another topic, sent once
/// PostgreSQL holds the events they conflict with, so that the contract's "the
/// first one applied stands" makes them, not their originals, the bad ones.
struct Conflicts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a hostile day's conflicts on another topic once their originals are applied (run it beside the worker).")

    @Option(help: "The file `day` wrote; it gets where the conflicts landed.") var expectedFile = "expected.json"
    @Option(help: "Seconds to wait for the originals to be applied.") var wait = 300

    func run() async throws {
        var expectation = try Expectation.read(expectedFile)
        let heldBack = expectation.heldBack
        guard !heldBack.isEmpty else {
            print("no conflicts held back in \(expectedFile)")
            return
        }
        let brokers = try environment("WMS_KAFKA_BROKERS")
        let postgresURL = try environment("WMS_POSTGRES_URL")
        let wait = self.wait
        let records = try await DedicatedThread(name: "wms.simulator.conflicts").run { () -> [HostileRecord] in
            let originals = Array(Set(heldBack.compactMap(\.waitsForEventId)))
            let db = try PostgresConnection(url: postgresURL)
            let deadline = ContinuousClock.now + .seconds(wait)
            while true {
                let applied = try db.query("SELECT count(*) AS n FROM inventory_events WHERE event_id = ANY(\(originals)::text[])").first!["n"].int()
                if applied == originals.count { break }
                guard ContinuousClock.now < deadline else {
                    throw ValidationError("\(originals.count - Int(applied)) of the conflicts' originals not applied within \(wait) s")
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
            let messages = heldBack.map(\.hostile)
            let deliveries = try Day.producer(brokers: brokers).deliver(messages.map(\.message))
            return zip(messages, deliveries).map { HostileRecord($0, at: $1) }
        }
        expectation.hostile += records
        expectation.heldBack = []
        try expectation.write(to: expectedFile)
        print("sent \(records.count) conflicts on another topic, their originals applied")
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait until the worker has taken in a generated day, then compare PostgreSQL, Redis and the expected state.")

    @Option(help: "The file `day` wrote.") var expectedFile = "expected.json"
    @Option(help: "Seconds to wait for the worker to take everything in.") var wait = 120
    @Flag(help: "Print every level, not only the first rows.") var all = false
    @Option(help: "Also wait until this consumer group has committed every message of the WMS topics.") var group: String?
    @Flag(inversion: .prefixedNo, help: "Read the dead-letter topic for the hostile messages' dead letters (not after a replay: retention may have dropped them).")
    var deadLetters = true

    func run() async throws {
        let expectation = try Expectation.read(expectedFile)
        let postgresURL = try environment("WMS_POSTGRES_URL")
        let redisURL = try RedisURL(try environment("WMS_REDIS_URL"))
        // The dead letters are read from the start, beside the worker: the dev
        // broker keeps 5 MiB a partition, which a large run's dead letters outgrow.
        let settled = FinishSignal()
        var deadLetterReader: Task<DeadLetterFindings, any Error>?
        if deadLetters, !expectation.hostile.isEmpty || !expectation.heldBack.isEmpty {
            let brokers = try environment("WMS_KAFKA_BROKERS")
            let records = Dictionary(expectation.hostile.map { ($0.position, $0) }, uniquingKeysWith: { first, _ in first })
            let keepUnknown = !expectation.heldBack.isEmpty
            deadLetterReader = Task {
                try await DedicatedThread(name: "wms.verify.dlq").run {
                    try Self.readDeadLetters(matching: records, keepUnknown: keepUnknown, brokers: brokers, until: settled)
                }
            }
        }
        if let group {
            let brokers = try environment("WMS_KAFKA_BROKERS")
            let wait = self.wait
            let progress = try await DedicatedThread(name: "wms.verify.group").run {
                try Self.waitForGroup(group, brokers: brokers, timeout: .seconds(wait))
            }
            guard progress.behind == 0 else {
                print("group \(group) is \(progress.behind) messages behind")
                throw ExitCode(1)
            }
            print("group \(group) has committed every message")
            if let rate = progress.rate {
                print(String(format: "committed %d messages from its first offset commit to its last, in %.2f s: %.0f messages/s",
                             rate.messages, rate.seconds, Double(rate.messages) / rate.seconds))
            }
        }
        let settledSignal = settled
        let (lines, ok, appliedHostile) = try await DedicatedThread(name: "wms.verify").run { () -> ([String], Bool, Set<String>) in
            let db = try PostgresConnection(url: postgresURL)
            let redis = try RedisClient(url: redisURL)
            let start = ContinuousClock.now
            var settled = false
            var counts = (events: Int64(0), dead: Int64(0), pending: Int64(0))
            while ContinuousClock.now - start < .seconds(wait) {
                let row = try db.query("""
                    SELECT (SELECT count(*) FROM inventory_events WHERE starts_with(event_id, \(expectation.prefix))) AS events,
                           (SELECT count(*) FROM dead_letters WHERE created_at >= \(expectation.startedAt)::timestamptz) AS dead,
                           (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS pending
                    """).first!
                counts = (try row["events"].int(), try row["dead"].int(), try row["pending"].int())
                // More events than expected settles too: a bad message applied, reported below.
                if counts.events >= expectation.events, counts.dead >= expectation.deadLetters, counts.pending == 0 {
                    settled = true
                    break
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
            settledSignal.set()
            var lines = ["events applied \(counts.events) of \(expectation.events) (lost \(max(0, Int64(expectation.events) - counts.events)), "
                         + "unexpected \(max(0, counts.events - Int64(expectation.events)))); dead letters \(counts.dead) "
                         + "(expected \(expectation.deadLetters): poison \(expectation.poison), hostile \(expectation.deadLetters - expectation.poison)); "
                         + "resends \(expectation.resends); outbox pending \(counts.pending)" + (settled ? "" : "  [NOT SETTLED after \(wait) s]")]
            let appliedHostile = try Self.appliedEvents(expectation.hostile.compactMap { $0.kind.isBad ? nil : $0.eventId }, db: db)
            var mismatches = 0
            let rows = try db.query("""
                SELECT sku, location_id, on_hand, allocated, reserved, damaged, picked, in_transit_in, in_transit_out
                FROM inventory_levels WHERE starts_with(sku, \(expectation.prefix)) ORDER BY sku, location_id
                """).rows
            var postgres: [String: [Int64]] = [:]
            for row in rows {
                postgres["\(try row["sku"].string())@\(try row["location_id"].string())"] = try (2...8).map { try row[$0].int() }
            }
            // What allocations added to `allocated`: lines ever allocated, less what a cancellation gave back.
            var allocatedByOrders: [String: Int64] = [:]
            for row in try db.query("""
                SELECT sku, location_id, sum(quantity - released) AS allocated FROM allocations
                WHERE starts_with(order_id, \(expectation.prefix)) AND allocated_by IS NOT NULL GROUP BY 1, 2
                """).rows {
                allocatedByOrders["\(try row[0].string())@\(try row[1].string())"] = try row[2].int()
            }
            lines.append("")
            lines.append("sku@location".padding(toLength: 24, withPad: " ", startingAt: 0)
                         + "   onHand allocated reserved  damaged   picked  inTrIn inTrOut  available  stores")
            for key in Set(expectation.levels.keys).union(postgres.keys).sorted() {
                var expected = expectation.levels[key] ?? Array(repeating: 0, count: 7)
                expected[1] += allocatedByOrders[key] ?? 0
                let parts = key.split(separator: "@")
                let hash = try redis.send("HMGET", "inventory:live:{\(parts[0])}:\(parts[1])", "onHand", "allocated", "reserved",
                                          "damaged", "picked", "inTransitIn", "inTransitOut", "available").array?.map { $0.int ?? 0 } ?? []
                let inPostgres = postgres[key] ?? Array(repeating: 0, count: 7)
                let available = expected[0] - expected[1] - expected[2]
                let agree = inPostgres == expected && Array(hash.prefix(7)) == expected && hash.last == available
                if !agree { mismatches += 1 }
                if all || lines.count < 24 || !agree {
                    lines.append(key.padding(toLength: 24, withPad: " ", startingAt: 0)
                                 + (expected + [available]).map { String($0).leftPadded(9) }.joined()
                                 + (agree ? "  equal" : "  DIFFER pg=\(inPostgres) redis=\(hash)"))
                }
            }
            if !all, expectation.levels.count > 22 { lines.append("… \(expectation.levels.count) SKU-locations in all (--all prints every one)") }
            lines.append("")
            for row in try db.query("""
                SELECT alert_type, count(*) AS n FROM variance_alerts WHERE starts_with(sku, \(expectation.prefix)) GROUP BY 1 ORDER BY 1
                """).rows {
                lines.append("alerts \(try row["alert_type"].string()): \(try row["n"].int())")
            }
            lines.append("variance alerts expected: \(expectation.varianceAlerts)")
            for row in try db.query("""
                SELECT error_code, count(*) AS n FROM dead_letters WHERE created_at >= \(expectation.startedAt)::timestamptz GROUP BY 1 ORDER BY 1
                """).rows {
                lines.append("dead letters \(try row["error_code"].string()): \(try row["n"].int())")
            }
            let varianceAlerts = try db.query("""
                SELECT count(*) AS n FROM variance_alerts WHERE alert_type = 'INVENTORY_VARIANCE_ALERT' AND starts_with(sku, \(expectation.prefix))
                """).first!["n"].int()
            lines.append(mismatches == 0 ? "PostgreSQL, Redis and the expected state agree on \(expectation.levels.count) SKU-locations"
                                         : "\(mismatches) SKU-locations DIFFER")
            // Every order line decided exactly once (the primary key), and one ALLOCATION line for each line ever allocated.
            var orderLinesOK = true
            if expectation.orderLines > 0 {
                var byStatus: [String: Int64] = [:]
                for row in try db.query("""
                    SELECT decision || '/' || status AS state, count(*) AS n FROM allocations WHERE starts_with(order_id, \(expectation.prefix)) GROUP BY 1 ORDER BY 1
                    """).rows {
                    byStatus[try row[0].string()] = try row[1].int()
                }
                let decided = byStatus.values.reduce(0, +)
                lines.append("order lines: \(decided) of \(expectation.orderLines) decided; " + byStatus.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", "))
                for row in try db.query("""
                    SELECT location_id, count(*) AS lines, sum(quantity) AS units FROM allocations
                    WHERE starts_with(order_id, \(expectation.prefix)) AND allocated_by IS NOT NULL GROUP BY 1 ORDER BY 1
                    """).rows {
                    lines.append("allocated to \(try row[0].string()): \(try row[1].int()) order lines, \(try row[2].int()) units")
                }
                let everAllocated = Set(try db.query("""
                    SELECT order_id || '/' || line_id AS line FROM allocations WHERE starts_with(order_id, \(expectation.prefix)) AND allocated_by IS NOT NULL
                    """).rows.map { try $0[0].string() })
                let (sent, dropped) = try Self.allocationLines(prefix: expectation.prefix)
                let missing = everAllocated.subtracting(sent.keys).count
                let doubled = sent.filter { $0.value > 1 }.count
                let unexpected = Set(sent.keys).subtracting(everAllocated).count
                // A long run outgrows the dev broker's retention (5 MiB a partition):
                // what it dropped cannot be counted as missing.
                let missingText = dropped > 0 ? "missing \(missing) not checked: retention dropped the topic's first \(dropped) messages"
                    : "missing \(missing)"
                lines.append("ALLOCATION lines on \(Self.allocationsTopic): \(sent.count) order lines (\(missingText), more than once \(doubled), unexpected \(unexpected))")
                orderLinesOK = decided == expectation.orderLines && (missing == 0 || dropped > 0) && doubled == 0 && unexpected == 0
            }
            return (lines, settled && counts.events == expectation.events && mismatches == 0 && varianceAlerts == expectation.varianceAlerts
                    && orderLinesOK, appliedHostile)
        }
        print(lines.joined(separator: "\n"))
        var hostileOK = true
        if let deadLetterReader {
            // Read again: `conflicts` may have added the conflicts it sent meanwhile.
            let final = try Expectation.read(expectedFile)
            let findings = try await deadLetterReader.value
            let tally = findings.tally(final.hostile, applied: appliedHostile)
            print("")
            print(tally.lines.joined(separator: "\n"))
            if findings.dropped > 0 {
                print("the dead-letter topic's retention dropped \(findings.dropped) messages before they were read: those count as not dead-lettered")
            }
            if !final.heldBack.isEmpty {
                print("\(final.heldBack.count) conflicts on another topic were never sent: run `wms-simulator conflicts` beside the worker")
            }
            hostileOK = tally.isRight && final.heldBack.isEmpty
        }
        if !ok || !hostileOK { throw ExitCode(1) }
    }
}

/// Set once, read from another thread.
final class FinishSignal: Sendable {
    private let flag = Atomic<Bool>(false)

    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// What the dead-letter topic held for a run's hostile messages.
struct DeadLetterFindings: Sendable {
    /// Per source position of a message sent: the messageIds seen, and what was
    /// wrong with the first.
    var found: [String: (messageIds: Set<String>, problems: [String])] = [:]
    /// Dead letters of sources the reader did not know yet (a conflict sent
    /// meanwhile), the first of each.
    var unknown: [String: (messageIds: Set<String>, first: KafkaMessage)] = [:]
    /// Messages retention dropped before they were read.
    var dropped: Int64 = 0

    func tally(_ records: [HostileRecord], applied: Set<String>) -> HostileTally {
        var tally = HostileTally(records)
        for record in records {
            if let seen = found[record.position] {
                tally.deadLettered(record, messageIds: seen.messageIds.count, problems: seen.problems)
            } else if let seen = unknown[record.position] {
                tally.deadLettered(record, messageIds: seen.messageIds.count, problems: record.problems(with: seen.first))
            }
            if !record.kind.isBad {
                if let eventId = record.eventId, applied.contains(eventId) { tally.applied(record) } else { tally.notApplied(record) }
            }
        }
        return tally
    }
}

extension Verify {
    static var deadLetterTopic: String { ProcessInfo.processInfo.environment["WMS_DLQ_TOPIC"] ?? "wms.events.dlq" }

    /// Reads the dead-letter topic from its start until `settled` is set and the
    /// end of every partition as it was then is reached, matching each dead letter
    /// to the message sent from its source (`records`, by position).
    static func readDeadLetters(matching records: [String: HostileRecord], keepUnknown: Bool, brokers: String,
                                until settled: FinishSignal) throws -> DeadLetterFindings {
        let topic = deadLetterTopic
        let reader = try KafkaConsumer(config: KafkaConfig(bootstrapServers: brokers, properties: [
            "group.id": "verify-dlq-\(UUID().uuidString.prefix(8))", "fetch.wait.max.ms": "50",
        ]), logger: Logger(label: "wms-simulator"))
        try reader.subscribe([topic])
        let partitions = (0..<Int32(try reader.partitionCount(of: topic, timeout: .seconds(10)))).map { KafkaTopicPartition(topic: topic, partition: $0) }
        // The next offset to read in each partition: what retention drops beyond it was never read.
        var next = try Dictionary(uniqueKeysWithValues: partitions.map { ($0, try reader.watermarks(of: $0, timeout: .seconds(10)).low) })
        var findings = DeadLetterFindings()
        var end: [KafkaTopicPartition: Int64]?
        var deadline = ContinuousClock.now + .seconds(3600)
        var checked = ContinuousClock.now
        while ContinuousClock.now < deadline {
            for message in try reader.poll(maxMessages: 5000, timeout: .milliseconds(100)) {
                next[message.topicPartition] = max(next[message.topicPartition] ?? 0, message.nextOffset)
                guard let position = HostileRecord.sourcePosition(of: message) else { continue }
                let messageId = HostileRecord.lastHeader("wms.message.id", of: message) ?? "offset \(message.offset)"
                if let record = records[position] {
                    if findings.found[position] == nil { findings.found[position] = ([], record.problems(with: message)) }
                    findings.found[position]!.messageIds.insert(messageId)
                } else if keepUnknown {
                    findings.unknown[position, default: ([], message)].messageIds.insert(messageId)
                }
            }
            if let end, partitions.allSatisfy({ next[$0]! >= end[$0]! }) { break }
            if end == nil, settled.isSet {
                end = try Dictionary(uniqueKeysWithValues: partitions.map { ($0, try reader.watermarks(of: $0, timeout: .seconds(10)).high) })
                deadline = ContinuousClock.now + .seconds(120)
            }
            if ContinuousClock.now - checked > .seconds(1) {
                checked = ContinuousClock.now
                for partition in partitions {
                    let low = try reader.watermarks(of: partition, timeout: .seconds(10)).low
                    if low > next[partition]! {
                        findings.dropped += low - next[partition]!
                        next[partition] = low
                    }
                }
            }
        }
        try reader.close()
        return findings
    }

    /// Which of these eventIds PostgreSQL holds.
    static func appliedEvents(_ eventIds: [String], db: PostgresConnection) throws -> Set<String> {
        guard !eventIds.isEmpty else { return [] }
        return Set(try db.query("SELECT event_id FROM inventory_events WHERE event_id = ANY(\(eventIds)::text[])").rows.map { try $0[0].string() })
    }

    static var allocationsTopic: String { ProcessInfo.processInfo.environment["WMS_ALLOCATIONS_TOPIC"] ?? "wms.allocations" }

    /// How many times each order line ("ORDER/LINE") of this run is in an ALLOCATION
    /// message, counting each messageId once (a repeat after a crash carries the same
    /// id); and how many messages retention dropped from the topic before it was read.
    static func allocationLines(prefix: String) throws -> (lines: [String: Int], dropped: Int64) {
        let brokers = try environment("WMS_KAFKA_BROKERS")
        let reader = try KafkaConsumer(config: KafkaConfig(bootstrapServers: brokers, properties: ["group.id": "verify-\(UUID().uuidString.prefix(8))"]),
                                       logger: Logger(label: "wms-simulator"))
        try reader.subscribe([allocationsTopic])
        let partitions = (0..<Int32(try reader.partitionCount(of: allocationsTopic, timeout: .seconds(10))))
            .map { KafkaTopicPartition(topic: allocationsTopic, partition: $0) }
        var remaining: Int64 = 0
        var dropped: Int64 = 0
        for partition in partitions {
            let marks = try reader.watermarks(of: partition, timeout: .seconds(10))
            remaining += marks.high - marks.low
            dropped += marks.low
        }
        var seen = Set<String>()
        var counts: [String: Int] = [:]
        let deadline = ContinuousClock.now + .seconds(120)
        while remaining > 0, ContinuousClock.now < deadline {
            for message in try reader.poll(maxMessages: 5000, timeout: .milliseconds(200)) {
                remaining -= 1
                guard let json = try? JSONSerialization.jsonObject(with: Data(message.value)) as? [String: Any],
                      json["type"] as? String == "ALLOCATION", let order = json["orderId"] as? String, order.hasPrefix(prefix),
                      let id = json["messageId"] as? String, seen.insert(id).inserted else { continue }
                for line in json["lines"] as? [[String: Any]] ?? [] {
                    counts["\(order)/\(line["lineId"] ?? "")", default: 0] += 1
                }
            }
        }
        try reader.close()
        return (counts, dropped)
    }

    static let wmsTopics = ["wms.receiving", "wms.picking", "wms.shipping", "wms.cycle-counts", "wms.damage", "wms.transfers", "inventory.orders"]

    /// Waits until the group's committed offsets reach the end of every partition.
    /// Returns how many messages it is still behind and, when it committed more
    /// than once meanwhile, the messages committed after the first commit seen and
    /// the seconds until the last: the drain rate without the group join and the
    /// first batch (read every 0.1 s).
    static func waitForGroup(_ group: String, brokers: String, timeout: Duration)
        throws -> (behind: Int64, rate: (messages: Int64, seconds: Double)?)
    {
        // A client of the group that never joins it: it only reads the committed offsets.
        let reader = try KafkaConsumer(config: KafkaConfig(bootstrapServers: brokers, properties: ["group.id": group]),
                                       logger: Logger(label: "wms-simulator"))
        let partitions = try wmsTopics.flatMap { topic in
            (0..<Int32(try reader.partitionCount(of: topic, timeout: .seconds(10)))).map { KafkaTopicPartition(topic: topic, partition: $0) }
        }
        let deadline = ContinuousClock.now + timeout
        var behind: Int64 = 0
        var start: Int64?
        var first: (committed: Int64, at: ContinuousClock.Instant)?
        var last: (committed: Int64, at: ContinuousClock.Instant)?
        repeat {
            let committed = try reader.committed(partitions, timeout: .seconds(10))
            let total = partitions.reduce(0) { $0 + max(0, committed[$1] ?? 0) }
            let now = ContinuousClock.now
            if start == nil { start = total }
            if total != last?.committed ?? start {
                if first == nil { first = (total, now) }
                last = (total, now)
            }
            behind = try partitions.reduce(0) { sum, partition in
                let high = try reader.watermarks(of: partition, timeout: .seconds(10)).high
                return sum + max(0, high - max(0, committed[partition] ?? 0))
            }
            if behind == 0 { break }
            Thread.sleep(forTimeInterval: 0.1)
        } while ContinuousClock.now < deadline
        guard let first, let last, last.at > first.at else { return (behind, nil) }
        return (behind, (last.committed - first.committed, (last.at - first.at) / .seconds(1)))
    }
}

/// Latency from produce to the hot store: one receipt every interval, each for
/// a SKU of its own, timed from just before it is produced until its Redis hash
/// exists. Run it beside a stream; it prints the median, the 99th percentile
/// and the worst, in milliseconds.
struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time probe events from produce until their Redis hash exists.")

    @Option(help: "Seconds to probe.") var seconds = 20
    @Option(help: "Milliseconds between probes.") var intervalMs = 100
    @Flag(help: "Print each probe's latency as it is measured.") var each = false

    func run() async throws {
        let brokers = try environment("WMS_KAFKA_BROKERS")
        let redisURL = try RedisURL(try environment("WMS_REDIS_URL"))
        let (seconds, interval, each) = (seconds, Duration.milliseconds(intervalMs), each)
        let prefix = "P\(UInt32.random(in: 0..<UInt32.max) % 100_000)-"
        let latencies = try await DedicatedThread(name: "wms.probe").run { () -> [Double] in
            let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: brokers, properties: ["linger.ms": "0"]),
                                             logger: Logger(label: "wms-simulator"))
            let redis = try RedisClient(url: redisURL)
            /// Produces probe `number` and waits until the worker has applied it: milliseconds.
            func probe(_ number: Int) throws -> Double {
                let id = "\(prefix)probe-\(number)"
                let sku = "\(prefix)PROBE-\(number)"
                let event = #"{"eventId":"\#(id)","eventType":"RECEIVING_COMPLETE","timestamp":"2026-11-27T10:00:00Z","locationId":"FC1","source":"wms","purchaseOrderId":"PO-\#(id)","items":[{"sku":"\#(sku)","quantity":1}]}"#
                let sent = ContinuousClock.now
                try producer.deliver([KafkaOutboundMessage(topic: "wms.receiving", key: Array(id.utf8), value: Array(event.utf8))])
                while try redis.send("EXISTS", "inventory:live:{\(sku)}:FC1").int != 1 {
                    guard ContinuousClock.now - sent < .seconds(30) else { throw ValidationError("probe \(id) not applied within 30 s") }
                    usleep(200)
                }
                return (ContinuousClock.now - sent) / .milliseconds(1)
            }
            // Not counted: the producer's first message waits for its connection and metadata.
            _ = try probe(0)
            var latencies: [Double] = []
            let end = ContinuousClock.now + .seconds(seconds)
            var next = ContinuousClock.now
            while next < end {
                latencies.append(try probe(latencies.count + 1))
                if each { print("\(Date().timeIntervalSince1970) " + String(format: "%.1f", latencies.last!)) }
                next += interval
                if next > ContinuousClock.now { Thread.sleep(forTimeInterval: (next - ContinuousClock.now) / .seconds(1)) }
            }
            return latencies
        }
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)] }
        print(String(format: "probes %d p50_ms %.1f p99_ms %.1f max_ms %.1f", sorted.count, percentile(0.5), percentile(0.99), sorted.last ?? 0))
    }
}

func environment(_ name: String) throws -> String {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        throw ValidationError("\(name) is not set (source \"$(scripts/services env)\")")
    }
    return value
}

