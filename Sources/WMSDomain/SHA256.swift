/// SHA-256 (FIPS 180-4), enough for payload digests without a crypto dependency.
public enum SHA256 {
    /// The 32-byte digest of `message`.
    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var state = initialState
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
            let schedule = schedule.baseAddress!
            let fullBlocksLength = message.count & ~63
            message.withUnsafeBufferPointer { bytes in
                for blockStart in stride(from: 0, to: fullBlocksLength, by: 64) {
                    compress(bytes.baseAddress! + blockStart, into: &state, schedule: schedule)
                }
            }
            // Padding: 0x80, zeros, then the length in bits as a 64-bit big-endian number.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { tail in
                let remainder = message.count - fullBlocksLength
                let tailLength = remainder < 56 ? 64 : 128
                _ = tail.initialize(fromContentsOf: message[fullBlocksLength...])
                tail.baseAddress!.advanced(by: remainder).initialize(repeating: 0, count: tailLength - remainder)
                tail[remainder] = 0x80
                let bitLength = UInt64(message.count) &* 8
                for byteIndex in 0..<8 {
                    tail[tailLength - 1 - byteIndex] = UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(byteIndex)))
                }
                for blockStart in stride(from: 0, to: tailLength, by: 64) {
                    compress(UnsafePointer(tail.baseAddress! + blockStart), into: &state, schedule: schedule)
                }
            }
        }
        var digest: [UInt8] = []
        digest.reserveCapacity(32)
        for word in state {
            withUnsafeBytes(of: word.bigEndian) { digest.append(contentsOf: $0) }
        }
        return digest
    }

    /// The digest of `message` as 64 lower-case hex digits.
    public static func hex(_ message: [UInt8]) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in digest(message) {
            Hex.append(byte, to: &text)
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static let initialState: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]

    private static let roundConstants: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    /// One 64-byte block. This is the hot path: raw pointers rather than buffers
    /// and rotations written out, which keeps even debug builds fast.
    private static func compress(_ block: UnsafePointer<UInt8>, into state: inout [UInt32], schedule w: UnsafeMutablePointer<UInt32>) {
        for t in 0..<16 {
            w[t] = UInt32(block[4 * t]) << 24 | UInt32(block[4 * t + 1]) << 16 | UInt32(block[4 * t + 2]) << 8 | UInt32(block[4 * t + 3])
        }
        for t in 16..<64 {
            let (x, y) = (w[t - 15], w[t - 2])
            let s0 = (x >> 7 | x << 25) ^ (x >> 18 | x << 14) ^ (x >> 3)
            let s1 = (y >> 17 | y << 15) ^ (y >> 19 | y << 13) ^ (y >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        roundConstants.withUnsafeBufferPointer { constants in
            let k = constants.baseAddress!
            for t in 0..<64 {
                let sum1 = (e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)
                let choice = (e & f) ^ (~e & g)
                let temp1 = h &+ sum1 &+ choice &+ k[t] &+ w[t]
                let sum0 = (a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                (h, g, f, e, d, c, b, a) = (g, f, e, d &+ temp1, c, b, a, temp1 &+ sum0 &+ majority)
            }
        }
        state[0] &+= a; state[1] &+= b; state[2] &+= c; state[3] &+= d
        state[4] &+= e; state[5] &+= f; state[6] &+= g; state[7] &+= h
    }
}
