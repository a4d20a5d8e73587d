/// The Redis key names the worker owns (contract, section 3). Every key of a SKU
/// carries `{SKU}`, the Redis Cluster hash tag, so one script call touches one
/// slot. Only validated ids (SKU, location, eventId, order, line and reservation
/// ids) ever reach a key name.
public enum RedisKeys {
    public static func live(sku: String, location: String) -> String { "inventory:live:{\(sku)}:\(location)" }
    public static func display(sku: String) -> String { "inventory:display:{\(sku)}" }
    /// Which payload claimed an eventId first: conflicts between payloads touching
    /// different SKUs are caught before any script runs.
    public static func claim(eventId: String) -> String { "inventory:claim:{\(eventId)}" }
    /// That an event's changes to this SKU were applied, and what they did.
    public static func applied(sku: String, eventId: String) -> String { "inventory:applied:{\(sku)}:\(eventId)" }
    /// The waiting order lines at a location, oldest first.
    public static func backorders(sku: String, location: String) -> String { "inventory:backorders:{\(sku)}:\(location)" }
    public static func backorderSequence(sku: String) -> String { "inventory:backorder-seq:{\(sku)}" }
    /// An order line's decision and status. `|` separates the ids: it is in neither's alphabet.
    public static func orderLine(sku: String, orderId: String, lineId: String) -> String { orderLinePrefix(sku: sku) + "\(orderId)|\(lineId)" }
    public static func orderLinePrefix(sku: String) -> String { "inventory:line:{\(sku)}:" }
    /// An order's picks at a location, by pick event, and what cancelled lines used of them.
    public static func picked(sku: String, location: String, orderId: String) -> String { "inventory:picked:{\(sku)}:\(location):\(orderId)" }
    /// The lines a cancellation resolved when it first ran.
    public static func cancelledLines(eventId: String) -> String { "inventory:cancel-lines:{\(eventId)}" }
    /// The token of the Redis state the workers build on (PostgreSQL's
    /// `redis_state`); absent or another token, and nothing is built on this Redis.
    /// `deployment`: the database's own id (databases sharing a Redis each have theirs).
    public static func stateSentinel(deployment: String) -> String { "inventory:state:{\(deployment)}" }
    /// On a Redis Cluster, one sentinel per slot: `slotTag` hashes to the slot.
    public static func stateSentinel(deployment: String, slotTag: String) -> String { "inventory:state:{\(slotTag)}:\(deployment)" }
    /// Set by an `apply_event.lua` call that stopped to ask for keys, for the
    /// SKU's calls behind it in the same pipeline (`token`: the pipeline's own).
    public static func applyGate(sku: String, token: String) -> String { "inventory:apply-gate:{\(sku)}:\(token)" }
    /// A checkout reservation, written by the checkout service.
    public static func reservation(sku: String, reservationId: String) -> String { "inventory:reservation:{\(sku)}:\(reservationId)" }
}
