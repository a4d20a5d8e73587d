import Foundation

/// A generated day of warehouse events across several fulfillment centers, with
/// the quantities the contract's arithmetic says they must leave behind. Its own
/// small model of section 2, independent of the worker's domain code, so that the
/// two check each other.
public struct WarehouseDay: Sendable {
    public struct Event: Sendable {
        public var id: String
        public var topic: String
        public var json: String
    }

    /// The 7 buckets in contract order: onHand allocated reserved damaged picked inTransitIn inTransitOut.
    public private(set) var expected: [String: [Int64]] = [:]
    public private(set) var events: [Event] = []
    public private(set) var alertsExpected = 0
    /// Every order line confirmed, for the checks of the allocations.
    public private(set) var orderLines = 0

    private var random: SeededRandom
    public let skus: [String]
    public let locations: [String]
    public let prefix: String

    public init(seed: UInt64, skus: Int, locations: Int, prefix: String) {
        random = SeededRandom(seed: seed)
        self.prefix = prefix
        self.skus = (0..<skus).map { "\(prefix)SKU-\($0)" }
        self.locations = (0..<locations).map { "FC\($0 + 1)" }
    }

    public mutating func generate(count: Int) {
        // Stock first, so that the rest of the day has something to move.
        for sku in skus {
            for location in locations where events.count < count {
                receive(sku, at: location, random.int(50...200))
            }
        }
        var orders = 0
        var transfers = 0
        while events.count < count {
            let sku = skus[random.int(0...(skus.count - 1))]
            let location = locations[random.int(0...(locations.count - 1))]
            switch random.int(0...99) {
            case 0..<25: receive(sku, at: location, random.int(5...60))
            case 25..<55:
                // An order: confirmed, then picked, packed and shipped; or cancelled
                // (some after a partial pick); or still open at the end of the day.
                orders += 1
                let order = "\(prefix)ORD-\(orders)"
                let second = skus[random.int(0...(skus.count - 1))]
                let lines = [(sku, Int64(random.int(1...5)))] + (second != sku && random.chance(0.4) ? [(second, Int64(random.int(1...3)))] : [])
                confirm(order, at: location, lines)
                switch random.int(0...9) {
                case 0...5:
                    for (lineSKU, quantity) in lines {
                        add(.pick, sku: lineSKU, at: location, quantity, order: order)
                        add(.pack, sku: lineSKU, at: location, quantity, order: order)
                        add(.ship, sku: lineSKU, at: location, quantity, order: order)
                    }
                case 6:
                    add(.pick, sku: lines[0].0, at: location, max(1, lines[0].1 / 2), order: order)
                    cancel(order)
                case 7: cancel(order)
                default: break
                }
            case 55..<70:
                let expectedCount = max(0, self.onHand(sku, location))
                let actual = max(0, expectedCount + Int64(random.int(-15...8)))
                cycleCount(sku, at: location, expected: expectedCount, actual: actual)
            case 70..<80: add(.damage, sku: sku, at: location, Int64(random.int(1...3)))
            default:
                transfers += 1
                let destination = locations.filter { $0 != location }[random.int(0...(locations.count - 2))]
                let quantity = Int64(random.int(1...10))
                transfer(sku, from: location, to: destination, quantity, id: "\(prefix)TR-\(transfers)")
            }
        }
        // An order's pick, pack and ship come together, so the day may end up to two
        // events past `count`: cutting them would leave the arithmetic out of step.
    }

    /// Events applied: the day's own and the valid hostile ones accounted for.
    public var eventCount: Int { events.count + hostileEvents }
    private var hostileEvents = 0

    /// Takes a valid hostile message into the day's arithmetic: its effects, the
    /// order lines it confirms, and its event.
    public mutating func account(for hostile: HostileMessage) {
        guard hostile.isNewEvent else { return }
        for change in hostile.changes { apply(change.sku, change.location, change.deltas) }
        orderLines += hostile.orderLines
        hostileEvents += 1
    }

    public func onHand(_ sku: String, _ location: String) -> Int64 { expected["\(sku)@\(location)"]?[0] ?? 0 }

    // MARK: Events and their arithmetic

    private enum Kind { case pick, pack, ship, damage }

    private mutating func receive(_ sku: String, at location: String, _ quantity: Int) {
        let id = nextID()
        apply(sku, location, [Int64(quantity), 0, 0, 0, 0, 0, 0])
        emit(id, "wms.receiving", envelope(id, "RECEIVING_COMPLETE", location,
                                           #""purchaseOrderId":"PO-\#(id)","items":[{"sku":"\#(sku)","quantity":\#(quantity)}]"#))
    }

    private mutating func add(_ kind: Kind, sku: String, at location: String, _ q: Int64, order: String = "") {
        let id = nextID()
        let item = #""items":[{"sku":"\#(sku)","quantity":\#(q)}]"#
        switch kind {
        case .pick:
            apply(sku, location, [-q, -q, 0, 0, q, 0, 0])
            emit(id, "wms.picking", envelope(id, "PICK_COMPLETE", location, #""orderId":"\#(order)",\#(item)"#))
        case .pack:
            emit(id, "wms.picking", envelope(id, "PACK_COMPLETE", location, #""orderId":"\#(order)",\#(item)"#))
        case .ship:
            apply(sku, location, [0, 0, 0, 0, -q, 0, 0])
            emit(id, "wms.shipping", envelope(id, "SHIP_COMPLETE", location, #""orderId":"\#(order)","shipmentId":"SH-\#(id)",\#(item)"#))
        case .damage:
            apply(sku, location, [-q, 0, 0, q, 0, 0, 0])
            emit(id, "wms.damage", envelope(id, "DAMAGE_REPORT", location, #""reason":"crushed pallet",\#(item)"#))
        }
    }

    /// Allocation itself is the worker's decision (it depends on what arrived
    /// first): `verify` checks it against the allocations the worker recorded.
    private mutating func confirm(_ order: String, at location: String, _ lines: [(String, Int64)]) {
        let id = nextID()
        orderLines += lines.count
        let body = lines.enumerated().map { index, line in
            #"{"lineId":"\#(index + 1)","sku":"\#(line.0)","locationId":"\#(location)","quantity":\#(line.1)}"#
        }.joined(separator: ",")
        emit(id, "inventory.orders", #"{"eventId":"\#(id)","eventType":"ORDER_CONFIRMED","timestamp":"2026-11-27T10:00:00Z","source":"order_service","orderId":"\#(order)","lines":[\#(body)]}"#)
    }

    private mutating func cancel(_ order: String) {
        let id = nextID()
        emit(id, "inventory.orders", #"{"eventId":"\#(id)","eventType":"ORDER_CANCELLED","timestamp":"2026-11-27T11:00:00Z","source":"order_service","orderId":"\#(order)"}"#)
    }

    private mutating func cycleCount(_ sku: String, at location: String, expected expectedCount: Int64, actual: Int64) {
        let id = nextID()
        let variance = actual - expectedCount
        apply(sku, location, [variance, 0, 0, 0, 0, 0, 0])
        if abs(variance) > 10 || (expectedCount > 0 && Double(abs(variance)) / Double(expectedCount) > 0.05) || (expectedCount == 0 && actual > 0) {
            alertsExpected += 1
        }
        emit(id, "wms.cycle-counts", envelope(id, "CYCLE_COUNT_ADJUSTMENT", location, """
            "sku":"\(sku)","expectedCount":\(expectedCount),"actualCount":\(actual),"reason":"cycle count","approvedBy":"lead-3","auditId":"AUD-\(id)"
            """))
    }

    private mutating func transfer(_ sku: String, from: String, to: String, _ q: Int64, id transferID: String) {
        let shipped = nextID()
        apply(sku, from, [-q, 0, 0, 0, 0, 0, q])
        apply(sku, to, [0, 0, 0, 0, 0, q, 0])
        emit(shipped, "wms.transfers", envelope(shipped, "TRANSFER_SHIPPED", from,
                                                #""transferId":"\#(transferID)","toLocationId":"\#(to)","items":[{"sku":"\#(sku)","quantity":\#(q)}]"#))
        let received = nextID()
        apply(sku, to, [q, 0, 0, 0, 0, -q, 0])
        apply(sku, from, [0, 0, 0, 0, 0, 0, -q])
        emit(received, "wms.transfers", envelope(received, "TRANSFER_RECEIVED", to,
                                                 #""transferId":"\#(transferID)","fromLocationId":"\#(from)","items":[{"sku":"\#(sku)","quantity":\#(q)}]"#))
    }

    private mutating func apply(_ sku: String, _ location: String, _ deltas: [Int64]) {
        let key = "\(sku)@\(location)"
        let current = expected[key] ?? Array(repeating: 0, count: 7)
        expected[key] = zip(current, deltas).map(+)
    }

    private mutating func emit(_ id: String, _ topic: String, _ json: String) {
        events.append(Event(id: id, topic: topic, json: json))
    }

    private var sequence = 0
    private mutating func nextID() -> String {
        sequence += 1
        return "\(prefix)EV-\(sequence)"
    }

    private func envelope(_ id: String, _ type: String, _ location: String, _ body: String) -> String {
        // Timestamps through the day, with an offset as WMSs send them.
        let second = sequence % 86_400
        let time = String(format: "2026-11-27T%02d:%02d:%02d.%03d+01:00", second / 3600, second / 60 % 60, second % 60, sequence % 1000)
        return #"{"eventId":"\#(id)","eventType":"\#(type)","timestamp":"\#(time)","locationId":"\#(location)","source":"wms",\#(body)}"#
    }
}
