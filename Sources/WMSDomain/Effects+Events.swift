extension InboundEvent {
    /// The quantity changes of a WMS event (section 2), one per item line and
    /// location touched, `lineNo` being the line's index in `items` (0 for a
    /// cycle count). Every line yields an effect, even one that changes nothing
    /// (pack, a zero variance): the ledger records them all. Order events have
    /// none here; their effects depend on the store's state.
    public var effects: [QuantityEffect] {
        guard let here = locationId else { return [] }
        switch body {
        case .receiving(_, let items):
            return Self.effects(of: items, at: here) { [.onHand: $0] }
        case .pick(_, let items):
            return Self.effects(of: items, at: here) { [.allocated: -$0, .onHand: -$0, .picked: $0] }
        case .pack(_, let items):
            return Self.effects(of: items, at: here) { _ in [:] }
        case .ship(_, _, let items):
            return Self.effects(of: items, at: here) { [.picked: -$0] }
        case .cycleCount(let count):
            return [QuantityEffect(lineNo: 0, sku: count.sku, locationId: here, deltas: Deltas([.onHand: count.variance]))]
        case .damage(_, let items):
            return Self.effects(of: items, at: here) { [.onHand: -$0, .damaged: $0] }
        case .transferShipped(_, let destination, let items):
            return Self.effects(of: items, at: here, [.onHand: -1, .inTransitOut: 1], andAt: destination, [.inTransitIn: 1])
        case .transferReceived(_, let origin, let items):
            return Self.effects(of: items, at: here, [.inTransitIn: -1, .onHand: 1], andAt: origin, [.inTransitOut: -1])
        case .orderConfirmed, .orderCancelled:
            return []
        }
    }

    private static func effects(
        of items: [ItemLine], at locationId: String, _ changes: (Int64) -> [Bucket: Int64]
    ) -> [QuantityEffect] {
        items.enumerated().map { lineNo, item in
            QuantityEffect(lineNo: lineNo, sku: item.sku, locationId: locationId, deltas: Deltas(changes(item.quantity)))
        }
    }

    /// A transfer: per line, one effect here and one at the other end, each a
    /// multiple (the signs) of the line's quantity.
    private static func effects(
        of items: [ItemLine], at here: String, _ hereSigns: [Bucket: Int64], andAt there: String, _ thereSigns: [Bucket: Int64]
    ) -> [QuantityEffect] {
        items.enumerated().flatMap { lineNo, item in
            [(here, hereSigns), (there, thereSigns)].map { locationId, signs in
                QuantityEffect(
                    lineNo: lineNo, sku: item.sku, locationId: locationId,
                    deltas: Deltas(signs.mapValues { $0 * item.quantity }))
            }
        }
    }
}
