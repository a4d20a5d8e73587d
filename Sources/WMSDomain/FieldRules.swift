/// The value rules of section 2 of the contract. `Schemas/json/defs.schema.json`
/// states the same rules for other readers; the agreement test holds them together.
enum FieldRules {
    static let quantity: ClosedRange<Int64> = 1...1_000_000_000
    /// expectedCount and actualCount of a cycle count.
    static let count: ClosedRange<Int64> = 0...1_000_000_000
    static let listLength: ClosedRange<Int> = 1...1_000
    static let reasonMaxLength = 512
    static let sources: Set<String> = ["wms", "order_service", "inventory_service"]
}

/// An ASCII token: 1 to `maxLength` characters of letters, digits, `.`, `_`,
/// `-` and, for ids, `:`.
struct TokenRule: Sendable {
    let maxLength: Int
    let allowsColon: Bool

    /// eventId, orderId, lineId, transferId and the other ids.
    static let identifier = TokenRule(maxLength: 128, allowsColon: true)
    static let sku = TokenRule(maxLength: 64, allowsColon: false)
    static let locationId = TokenRule(maxLength: 32, allowsColon: false)

    var summary: String {
        "1-\(maxLength) characters of [A-Za-z0-9._\(allowsColon ? ":" : "")-]"
    }

    func accepts(_ text: String) -> Bool {
        var length = 0
        for byte in text.utf8 {
            length += 1
            guard length <= maxLength, isAllowed(byte) else { return false }
        }
        return length > 0
    }

    private func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        case UInt8(ascii: ":"):
            allowsColon
        default:
            false
        }
    }
}
