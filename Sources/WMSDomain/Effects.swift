/// The quantity buckets of `inventory:live:{SKU}:LOCATION` and `inventory_levels`.
/// `available` is derived: onHand - allocated - reserved.
public enum Bucket: String, Sendable, CaseIterable {
    case onHand, allocated, reserved, damaged, picked, inTransitIn, inTransitOut

    /// The column in `inventory_levels` (and, prefixed by `d_`, in the ledger).
    public var column: String {
        switch self {
        case .onHand: "on_hand"
        case .allocated: "allocated"
        case .reserved: "reserved"
        case .damaged: "damaged"
        case .picked: "picked"
        case .inTransitIn: "in_transit_in"
        case .inTransitOut: "in_transit_out"
        }
    }
}

/// A change of every bucket, in `Bucket.allCases` order.
public struct Deltas: Sendable, Hashable {
    public var values: [Int64]

    public init() { values = Array(repeating: 0, count: Bucket.allCases.count) }

    public init(_ changes: [Bucket: Int64]) {
        self.init()
        for (bucket, delta) in changes { self[bucket] = delta }
    }

    public subscript(_ bucket: Bucket) -> Int64 {
        get { values[Self.index(bucket)] }
        set { values[Self.index(bucket)] = newValue }
    }

    public var isZero: Bool { values.allSatisfy { $0 == 0 } }

    public static func + (a: Deltas, b: Deltas) -> Deltas {
        var sum = a
        for index in sum.values.indices { sum.values[index] += b.values[index] }
        return sum
    }

    private static func index(_ bucket: Bucket) -> Int {
        switch bucket {
        case .onHand: 0
        case .allocated: 1
        case .reserved: 2
        case .damaged: 3
        case .picked: 4
        case .inTransitIn: 5
        case .inTransitOut: 6
        }
    }
}

/// What one line of an event does at one location: a ledger row.
public struct QuantityEffect: Sendable, Hashable {
    /// The position of the line in `items` (0 for a cycle count).
    public var lineNo: Int
    public var sku: String
    public var locationId: String
    public var deltas: Deltas

    public init(lineNo: Int, sku: String, locationId: String, deltas: Deltas) {
        self.lineNo = lineNo
        self.sku = sku
        self.locationId = locationId
        self.deltas = deltas
    }
}
