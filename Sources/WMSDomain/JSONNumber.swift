/// A JSON number as its exact decimal value. The contract compares numbers by
/// exact value, never through a Double or Int64 that could make two different
/// values equal, so a number is held as its canonical text: one spelling per
/// value, which equality, hashing and the canonical JSON all use.
///
/// The canonical form:
/// - zero is `0` (`-0`, `0.0` and `0e5` too);
/// - an integer from -2^63 to 2^63-1 is written in plain decimal: `-12`, `1000`
///   (`1.0`, `1e0` and `10e-1` are all `1`);
/// - any other value is written with its significant digits d1 d2 … dn (no
///   leading or trailing zeros) and the exponent e of d1, so that the value is
///   d1.d2…dn × 10^e: in positional notation when -4 ≤ e ≤ 15 (`0.1`, `-2.5`,
///   `0.0001`, `123456789012.5`), otherwise as `d1.d2…dn`, or `d1` alone, then
///   `e`, the sign of e and at least two digits of it (`1e-05`, `1.5e+300`,
///   `1.234567890123456789e+19`, `1e+400`).
///
/// This is the form the writer gave every number a Double held exactly
/// (Swift's shortest round-trip form, integral values within ±2^53 as
/// integers), so digests of payloads applied before stay the same. Only
/// integral values between 2^53 and 2^63 spelled with a fraction or exponent
/// changed (`1e16` was `1e+16`, now `10000000000000000` as the integer token
/// always was), and numbers a Double could not hold are now exact.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The canonical text (ASCII).
    public let description: String

    public init(_ integer: Int64) {
        description = String(integer)
    }

    /// The value Swift's shortest round-trip form of `number` denotes (exactly
    /// 0.1 for the Double nearest 0.1), as the writer always wrote Doubles; nil
    /// for NaN and infinities, which JSON cannot hold.
    public init?(_ number: Double) {
        guard number.isFinite else { return nil }
        var text = number.description
        self = text.withUTF8 { JSONNumber(validToken: $0) }
    }

    /// The value of a number token as RFC 8259 spells it (the parser checked the
    /// grammar): `-`? int (`.` digits)? ([eE] [+-]? digits)?.
    init(validToken token: UnsafeBufferPointer<UInt8>) {
        description = String(decoding: DecimalToken(token).canonicalText, as: UTF8.self)
    }

    /// The value as an Int64 when it is an integer within Int64's range (`5`,
    /// `5.0`, `50e-1`); nil otherwise. Exactly those values have a canonical
    /// text of plain digits.
    public var integerValue: Int64? {
        Int64(description)
    }
}

/// A number token taken apart: its significant digits and the exponent of the
/// first of them.
private struct DecimalToken {
    /// Above this many digits an exponent may not fit in Int, so it is carried
    /// as decimal digits.
    static let maxIntExponentDigits = 18

    var isNegative = false
    /// ASCII digits, first and last nonzero; empty for zero.
    var significand: [UInt8] = []
    var exponent = Exponent.small(0)

    enum Exponent {
        case small(Int)
        /// Sign and magnitude of an exponent of more than 18 digits, no leading zeros.
        case large(isNegative: Bool, digits: [UInt8])
    }

    init(_ token: UnsafeBufferPointer<UInt8>) {
        var index = token.startIndex
        isNegative = token[index] == UInt8(ascii: "-")
        if isNegative { index += 1 }
        var digits: [UInt8] = []
        var integerDigitCount = 0
        while index < token.endIndex, Self.isDigit(token[index]) {
            digits.append(token[index])
            integerDigitCount += 1
            index += 1
        }
        if index < token.endIndex, token[index] == UInt8(ascii: ".") {
            index += 1
            while index < token.endIndex, Self.isDigit(token[index]) {
                digits.append(token[index])
                index += 1
            }
        }
        guard let first = digits.firstIndex(where: { $0 != UInt8(ascii: "0") }),
              let last = digits.lastIndex(where: { $0 != UInt8(ascii: "0") }) else {
            return  // zero, whatever its sign and exponent
        }
        significand = Array(digits[first...last])
        // d1's exponent is the token's plus d1's place among the digits around the point.
        let shift = integerDigitCount - 1 - first
        exponent = index < token.endIndex
            ? Self.exponent(UnsafeBufferPointer(rebasing: token[(index + 1)...]), plus: shift)
            : .small(shift)
    }

    /// The exponent part after `e`, plus `shift`.
    private static func exponent(_ part: UnsafeBufferPointer<UInt8>, plus shift: Int) -> Exponent {
        let isNegative = part.first == UInt8(ascii: "-")
        let digits = part.drop(while: { !isDigit($0) || $0 == UInt8(ascii: "0") })
        guard digits.count > maxIntExponentDigits else {
            let magnitude = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            return .small((isNegative ? -magnitude : magnitude) + shift)
        }
        // The magnitude is at least 10^18, beyond any shift a buffer in memory
        // makes, so the sign stays and only the magnitude moves.
        return .large(isNegative: isNegative, digits: adding(isNegative ? -shift : shift, to: Array(digits)))
    }

    /// `digits` (a decimal magnitude of more than 18 digits) plus `delta`, which
    /// is smaller than 10^18 in magnitude.
    private static func adding(_ delta: Int, to digits: [UInt8]) -> [UInt8] {
        let lowCount = maxIntExponentDigits
        let lowLimit = 1_000_000_000_000_000_000
        var result = digits
        let lowStart = result.count - lowCount
        var low = result[lowStart...].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) } + delta
        var carry = 0
        if low < 0 {
            low += lowLimit
            carry = -1
        } else if low >= lowLimit {
            low -= lowLimit
            carry = 1
        }
        for position in result[lowStart...].indices.reversed() {
            result[position] = UInt8(ascii: "0") + UInt8(low % 10)
            low /= 10
        }
        // Ripple the carry or borrow through the high digits.
        var position = lowStart - 1
        while carry != 0, position >= 0 {
            let digit = Int(result[position] - UInt8(ascii: "0")) + carry
            carry = digit < 0 ? -1 : digit > 9 ? 1 : 0
            result[position] = UInt8(ascii: "0") + UInt8((digit + 10) % 10)
            position -= 1
        }
        if carry == 1 { result.insert(UInt8(ascii: "1"), at: 0) }
        return Array(result.drop(while: { $0 == UInt8(ascii: "0") }))
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    // MARK: Writing

    var canonicalText: [UInt8] {
        guard !significand.isEmpty else { return [UInt8(ascii: "0")] }
        var text: [UInt8] = isNegative ? [UInt8(ascii: "-")] : []
        switch exponent {
        case .small(let exponent) where Self.isInt64(significand, exponent: exponent, isNegative: isNegative):
            text += significand
            text += repeatElement(UInt8(ascii: "0"), count: exponent - (significand.count - 1))
        case .small(let exponent) where (-4...15).contains(exponent):
            if exponent >= 0 {
                // Not an integer (those are Int64s up to here), so digits follow the point.
                text += significand[...exponent]
                text.append(UInt8(ascii: "."))
                text += significand[(exponent + 1)...]
            } else {
                text += [UInt8(ascii: "0"), UInt8(ascii: ".")]
                text += repeatElement(UInt8(ascii: "0"), count: -exponent - 1)
                text += significand
            }
        case .small(let exponent):
            appendScientific(to: &text, exponentIsNegative: exponent < 0, exponentDigits: Array(String(exponent.magnitude).utf8))
        case .large(let exponentIsNegative, let digits):
            appendScientific(to: &text, exponentIsNegative: exponentIsNegative, exponentDigits: digits)
        }
        return text
    }

    private func appendScientific(to text: inout [UInt8], exponentIsNegative: Bool, exponentDigits: [UInt8]) {
        text.append(significand[0])
        if significand.count > 1 {
            text.append(UInt8(ascii: "."))
            text += significand.dropFirst()
        }
        text.append(UInt8(ascii: "e"))
        text.append(exponentIsNegative ? UInt8(ascii: "-") : UInt8(ascii: "+"))
        if exponentDigits.count < 2 { text.append(UInt8(ascii: "0")) }
        text += exponentDigits
    }

    /// Whether d1.d2…dn × 10^exponent is an integer within Int64's range.
    private static func isInt64(_ significand: [UInt8], exponent: Int, isNegative: Bool) -> Bool {
        guard exponent >= significand.count - 1, exponent <= maxIntExponentDigits else { return false }
        let padded = significand + repeatElement(UInt8(ascii: "0"), count: exponent - (significand.count - 1))
        return Int64((isNegative ? "-" : "") + String(decoding: padded, as: UTF8.self)) != nil
    }
}
