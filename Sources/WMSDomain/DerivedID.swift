/// Ids the worker derives from the ids of what caused something: outbound
/// messageIds and its own internal event tokens. The parts are joined with `|`,
/// which no id of the contract may contain (section 2), so two different causes
/// never share an id, whatever `:` their ids hold; and no derived id can be an
/// inbound eventId.
public enum DerivedID {
    public static let separator: Character = "|"

    /// `kind:part|part|…`.
    public static func make(_ kind: String, _ parts: String...) -> String {
        kind + ":" + parts.joined(separator: String(separator))
    }

    /// The lines of one order at one location that one event allocated.
    public static func allocation(eventId: String, orderId: String, locationId: String) -> String {
        make("allocation", eventId, orderId, locationId)
    }

    /// The lines of one order at one location that one event released.
    public static func allocationCancelled(eventId: String, orderId: String, locationId: String) -> String {
        make("allocation-cancelled", eventId, orderId, locationId)
    }

    /// A line released late, from `pending_cancellations`.
    public static func lateAllocationCancelled(cancelEventId: String, orderId: String, lineId: String) -> String {
        make("allocation-cancelled-late", cancelEventId, orderId, lineId)
    }

    /// The event a late release runs under in Redis (its mark, its writes).
    public static func lateCancellationToken(cancelEventId: String, orderId: String, lineId: String) -> String {
        make("late-cancel", cancelEventId, orderId, lineId)
    }
}
