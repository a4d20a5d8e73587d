import Foundation
import Kafka
import Logging
import Postgres
import Redis
import WMSDomain
import WMSPipeline
import WMSStore

/// Everything one pipeline test needs, isolated from the other tests: its own
/// topics, consumer group, PostgreSQL schema and SKU prefix (Redis keys carry the SKU).
public struct PipelineFixture: Sendable {
    public let id: String
    public let schema: FreshSchema
    public let topics: [String]
    public let alertsTopic: String
    public let deadLetterTopic: String
    public let allocationsTopic: String
    public let group: String
    public var maxBatchSize = 2000
    public var backorderPolicy = BackorderPolicy.strictFIFO
    /// librdkafka properties of the pipeline's producer (`message.max.bytes`, ...).
    public var producerProperties: [String: String] = [:]
    /// The dev broker, or a test's own mock cluster (to inject errors).
    public var kafkaBrokers = TestEnvironment.kafkaBrokers
    public static let logger = Logger(label: "wms.test.pipeline")

    public static func create(topics: Int = 1) async throws -> PipelineFixture {
        let id = UUID().uuidString.prefix(8).lowercased()
        return PipelineFixture(
            id: String(id), schema: try await FreshSchema.create(migrated: true),
            topics: (0..<topics).map { "t\(id).wms.in\($0)" }, alertsTopic: "t\(id).alerts", deadLetterTopic: "t\(id).dlq",
            allocationsTopic: "t\(id).allocations",
            group: "g\(id)")
    }

    /// The settings of a `wms-worker` process working for this fixture.
    public var workerEnvironment: [String: String] {
        [
            "WMS_KAFKA_BROKERS": kafkaBrokers, "WMS_KAFKA_GROUP_ID": group, "WMS_TOPICS": topics.joined(separator: ","),
            "WMS_REDIS_URL": TestEnvironment.redisURL, "WMS_POSTGRES_URL": schema.url,
            "WMS_ALERTS_TOPIC": alertsTopic, "WMS_DLQ_TOPIC": deadLetterTopic, "WMS_ALLOCATIONS_TOPIC": allocationsTopic,
            "WMS_KAFKA_CONSUMER_PROPERTIES": "session.timeout.ms=6000;heartbeat.interval.ms=500",
        ]
    }

    /// A SKU unique to this test.
    public func sku(_ name: String) -> String { "T\(id)-\(name)" }

    public var settings: PipelineSettings {
        var settings = PipelineSettings(topics: topics)
        settings.alertsTopic = alertsTopic
        settings.deadLetterTopic = deadLetterTopic
        settings.allocationsTopic = allocationsTopic
        settings.backorderPolicy = backorderPolicy
        settings.pollTimeout = .milliseconds(50)
        settings.maxRetryDelay = .seconds(2)
        settings.maxBatchSize = maxBatchSize
        return settings
    }

    public func produce(_ values: [String], topic: Int = 0, partition: Int32? = nil) throws {
        try produce(values.map { Array($0.utf8) }, topic: topic, partition: partition)
    }

    public func produce(_ values: [[UInt8]], topic: Int = 0, partition: Int32? = nil) throws {
        try produce(messages: values.map { KafkaOutboundMessage(topic: topics[topic], partition: partition, key: nil, value: $0) })
    }

    /// Messages as they are, with their keys and headers; where each landed.
    @discardableResult
    public func produce(messages: [KafkaOutboundMessage]) throws -> [KafkaDelivery] {
        // Room for the oversized messages of the bad-input tests (the hostile ones reach
        // 8 MiB), compressed: the dev broker keeps the last 5 MiB of a partition, as sent.
        let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: kafkaBrokers, properties: [
            "message.max.bytes": "16777216", "compression.type": "lz4",
        ]), logger: Self.logger)
        return try producer.deliver(messages)
    }

    /// Runs a pipeline of group `group` until it has seen `messages` messages (applied,
    /// duplicate or dead-lettered) or `timeout` passed; returns its totals.
    public func run(untilSeen messages: Int, group: String? = nil, timeout: Duration = .seconds(60)) throws -> BatchReport {
        let deadline = ContinuousClock.now + timeout
        return try run(group: group) { totals in
            totals.appliedCount + totals.duplicates + totals.deadLetterCount >= messages || ContinuousClock.now >= deadline
        }
    }

    /// Runs a pipeline until `done` (asked between batches, with its totals so far) says so.
    public func run(group: String? = nil, until done: (BatchReport) -> Bool) throws -> BatchReport {
        var consumerConfig = KafkaConfig(bootstrapServers: kafkaBrokers, properties: [
            "group.id": group ?? self.group, "session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
        ])
        consumerConfig.clientID = "wms-test"
        let redisURL = try RedisURL(TestEnvironment.redisURL)
        let pipeline = Pipeline(settings: settings, connections: Pipeline.Connections(
            consumer: try KafkaConsumer(config: consumerConfig, logger: Self.logger),
            producer: try KafkaProducer(config: KafkaConfig(bootstrapServers: kafkaBrokers, properties: producerProperties),
                                        logger: Self.logger),
            hot: try RedisClient(url: redisURL), displayCache: try RedisClient(url: redisURL),
            postgres: try InventoryStore.connect(url: schema.url), commitHot: try RedisClient(url: redisURL),
            commitPostgres: try InventoryStore.connect(url: schema.url)), logger: Self.logger)
        try pipeline.run(shouldStop: { done(pipeline.totals) }, sleep: { Thread.sleep(forTimeInterval: $0 / .seconds(1)) })
        return pipeline.totals
    }

    /// `inventory_levels` per "SKU@LOCATION": onHand allocated reserved damaged picked inTransitIn inTransitOut.
    public func postgresLevels() throws -> [String: [Int64]] {
        let db = try PostgresConnection(url: schema.url)
        var levels: [String: [Int64]] = [:]
        for row in try db.query("""
            SELECT sku, location_id, on_hand, allocated, reserved, damaged, picked, in_transit_in, in_transit_out FROM inventory_levels
            """).rows {
            levels["\(try row["sku"].string())@\(try row["location_id"].string())"] = try (2...8).map { try row[$0].int() }
        }
        return levels
    }

    /// The Redis hashes of the same keys, same order, plus `available` last.
    public func redisLevels(_ keys: some Sequence<String>, url: String = TestEnvironment.redisURL) throws -> [String: [Int64]] {
        let redis = try RedisClient(url: try RedisURL(url))
        var levels: [String: [Int64]] = [:]
        for key in keys {
            let parts = key.split(separator: "@")
            let values = try redis.send("HMGET", "inventory:live:{\(parts[0])}:\(parts[1])", "onHand", "allocated", "reserved",
                                        "damaged", "picked", "inTransitIn", "inTransitOut", "available").array ?? []
            levels[key] = values.map { $0.int ?? -999_999 }
        }
        return levels
    }

    public func query(_ sql: String) throws -> PostgresRows {
        try PostgresConnection(url: schema.url).query(PostgresQuery(unsafeSQL: sql))
    }

    /// Every message of a topic, read with a group of its own.
    public func readAll(_ topic: String, expecting count: Int, timeout: Duration = .seconds(30)) throws -> [KafkaMessage] {
        let consumer = try KafkaConsumer(config: KafkaConfig(bootstrapServers: kafkaBrokers, properties: [
            "group.id": "reader-\(UUID().uuidString.prefix(8))",
        ]), logger: Self.logger)
        try consumer.subscribe([topic])
        var messages: [KafkaMessage] = []
        let deadline = ContinuousClock.now + timeout
        // Read a little past `count` so that extra messages are seen too.
        var quietSince: ContinuousClock.Instant?
        while ContinuousClock.now < deadline {
            let batch = try consumer.poll(maxMessages: 1000, timeout: .milliseconds(200))
            messages += batch
            if messages.count >= count {
                if batch.isEmpty {
                    quietSince = quietSince ?? ContinuousClock.now
                    if ContinuousClock.now - quietSince! > .seconds(1) { break }
                } else {
                    quietSince = nil
                }
            }
        }
        try consumer.close()
        return messages
    }
}

/// Event JSON as a WMS would send it.
public enum WMSEvents {
    public static func items(_ items: [(String, Int)]) -> String {
        "[" + items.map { #"{"sku":"\#($0.0)","quantity":\#($0.1)}"# }.joined(separator: ",") + "]"
    }

    public static func envelope(_ id: String, _ type: String, location: String, _ extra: String) -> String {
        #"{"eventId":"\#(id)","eventType":"\#(type)","timestamp":"2026-11-27T08:00:00.000Z","locationId":"\#(location)","source":"wms",\#(extra)}"#
    }

    public static func receiving(_ id: String, at location: String, _ lines: [(String, Int)]) -> String {
        envelope(id, "RECEIVING_COMPLETE", location: location, #""purchaseOrderId":"PO-1","items":\#(items(lines))"#)
    }

    public static func pick(_ id: String, at location: String, order: String = "O-1", _ lines: [(String, Int)]) -> String {
        envelope(id, "PICK_COMPLETE", location: location, #""orderId":"\#(order)","items":\#(items(lines))"#)
    }

    public static func pack(_ id: String, at location: String, order: String = "O-1", _ lines: [(String, Int)]) -> String {
        envelope(id, "PACK_COMPLETE", location: location, #""orderId":"\#(order)","items":\#(items(lines))"#)
    }

    public static func ship(_ id: String, at location: String, order: String = "O-1", _ lines: [(String, Int)]) -> String {
        envelope(id, "SHIP_COMPLETE", location: location, #""orderId":"\#(order)","shipmentId":"S-1","items":\#(items(lines))"#)
    }

    public static func damage(_ id: String, at location: String, _ lines: [(String, Int)]) -> String {
        envelope(id, "DAMAGE_REPORT", location: location, #""reason":"forklift","items":\#(items(lines))"#)
    }

    public static func cycleCount(_ id: String, at location: String, sku: String, expected: Int, actual: Int) -> String {
        envelope(id, "CYCLE_COUNT_ADJUSTMENT", location: location,
                 #""sku":"\#(sku)","expectedCount":\#(expected),"actualCount":\#(actual),"reason":"annual count","approvedBy":"mgr-7","auditId":"A-1""#)
    }

    public static func transferShipped(_ id: String, from: String, to: String, _ lines: [(String, Int)]) -> String {
        envelope(id, "TRANSFER_SHIPPED", location: from, #""transferId":"TR-\#(id)","toLocationId":"\#(to)","items":\#(items(lines))"#)
    }

    public static func transferReceived(_ id: String, at: String, from: String, _ lines: [(String, Int)]) -> String {
        envelope(id, "TRANSFER_RECEIVED", location: at, #""transferId":"TR-\#(id)","fromLocationId":"\#(from)","items":\#(items(lines))"#)
    }
}

/// Order events as the order service sends them.
public enum OrderEvents {
    public static func confirmed(_ id: String, order: String, _ lines: [(lineId: String, sku: String, location: String, quantity: Int, reservation: String?)]) -> String {
        let body = lines.map { line in
            #"{"lineId":"\#(line.lineId)","sku":"\#(line.sku)","locationId":"\#(line.location)","quantity":\#(line.quantity)"#
                + (line.reservation.map { #","reservationId":"\#($0)""# } ?? "") + "}"
        }.joined(separator: ",")
        return #"{"eventId":"\#(id)","eventType":"ORDER_CONFIRMED","timestamp":"2026-11-27T09:00:00Z","source":"order_service","orderId":"\#(order)","lines":[\#(body)]}"#
    }

    public static func cancelled(_ id: String, order: String, lines: [String]? = nil) -> String {
        let body = lines.map { #","lines":["# + $0.map { #"{"lineId":"\#($0)"}"# }.joined(separator: ",") + "]" } ?? ""
        return #"{"eventId":"\#(id)","eventType":"ORDER_CANCELLED","timestamp":"2026-11-27T09:30:00Z","source":"order_service","orderId":"\#(order)"\#(body)}"#
    }
}

extension PipelineFixture {
    /// Every ALLOCATION / ALLOCATION_CANCELLED on the allocations topic, decoded.
    public func allocationMessages(expecting count: Int) throws -> [JSONValue] {
        try readAll(allocationsTopic, expecting: count).map { try JSONValue.parse($0.value) }
    }

    /// `allocations` rows: "ORDER/LINE" -> "decision/status/released".
    public func allocationRows() throws -> [String: String] {
        var rows: [String: String] = [:]
        for row in try query("SELECT order_id, line_id, decision, status, released FROM allocations").rows {
            rows["\(try row[0].string())/\(try row[1].string())"] = "\(try row[2].string())/\(try row[3].string())/\(try row[4].int())"
        }
        return rows
    }
}
