extension BadEvent {
    /// A confirmation that gives an order line already confirmed another SKU,
    /// location or quantity: a line is decided once (contract, section 2).
    public static func changedOrderLine(eventId: String, detail: String) -> BadEvent {
        BadEvent(code: .invalidField, detail: "an order line was confirmed before with another sku, locationId or quantity: \(detail)",
                 eventId: eventId)
    }
}
