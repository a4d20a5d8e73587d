/// Redis Cluster's key-to-slot mapping: CRC16 (XMODEM) of the key's hash tag,
/// modulo 16384. The hash tag is what sits between the first `{` and the next
/// `}` when that is not empty; otherwise the whole key counts.
public enum RedisClusterSlot {
    public static let count = 16384

    public static func of(key: some Collection<UInt8>) -> Int {
        Int(crc16(hashTag(key)) % UInt16(count))
    }

    public static func of(key: String) -> Int { of(key: key.utf8) }

    static func hashTag<Key: Collection<UInt8>>(_ key: Key) -> Key.SubSequence {
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let inside = key[key.index(after: open)...]
            if let close = inside.firstIndex(of: UInt8(ascii: "}")), close != inside.startIndex {
                return inside[..<close]
            }
        }
        return key[...]
    }

    static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }

    /// A short hash tag for every slot (`tags[slot]` hashes to `slot`): keys
    /// that must live in a given slot, whatever else they name, carry it.
    public static let tags: [String] = {
        var tags = [String?](repeating: nil, count: count)
        var missing = count
        var candidate = 0
        while missing > 0 {
            let tag = String(candidate, radix: 36)
            let slot = of(key: tag)
            if tags[slot] == nil {
                tags[slot] = tag
                missing -= 1
            }
            candidate += 1
        }
        return tags.map { $0! }
    }()
}
