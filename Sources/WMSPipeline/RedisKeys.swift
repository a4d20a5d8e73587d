/// The Redis key names the worker owns (contract, section 3). Every key of a SKU
/// carries `{SKU}`, the Redis Cluster hash tag, so one script call touches one
/// slot. Only validated ids (SKU, location, eventId) ever reach a key name.
enum RedisKeys {
    static func live(sku: String, location: String) -> String { "inventory:live:{\(sku)}:\(location)" }
    static func display(sku: String) -> String { "inventory:display:{\(sku)}" }
    /// That an event's changes to this SKU were applied, and what they found.
    static func applied(sku: String, eventId: String) -> String { "inventory:applied:{\(sku)}:\(eventId)" }
}
