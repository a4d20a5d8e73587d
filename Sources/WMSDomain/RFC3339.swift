/// RFC 3339 date-times with an offset, to and from Unix epoch milliseconds,
/// without Foundation's calendars (the decoder's hot path, and the outbound
/// messages' timestamps).
public enum RFC3339 {
    /// The instant of `text` in milliseconds since the Unix epoch, or nil when it
    /// is not `YYYY-MM-DD(T|t)hh:mm:ss[.fraction](Z|z|+hh:mm|-hh:mm)` with valid
    /// ranges: year 0001-9999, a day that exists in its month, hour 0-23, minute
    /// 0-59, second 0-60 (a leap second counts as the next second), offset up to
    /// 23:59. Fraction digits beyond milliseconds are truncated.
    public static func epochMilliseconds(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8(parse)
    }

    /// `YYYY-MM-DDThh:mm:ss.mmmZ` for an instant in years 0001-9999.
    public static func format(epochMilliseconds: Int64) -> String {
        let (days, millisecondOfDay) = epochMilliseconds.floorDivided(by: millisecondsPerDay)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        let secondOfDay = millisecondOfDay / 1000
        var text = ""
        text.reserveCapacity(24)
        append(year, digits: 4, to: &text)
        text += "-"
        append(month, digits: 2, to: &text)
        text += "-"
        append(day, digits: 2, to: &text)
        text += "T"
        append(secondOfDay / 3600, digits: 2, to: &text)
        text += ":"
        append(secondOfDay / 60 % 60, digits: 2, to: &text)
        text += ":"
        append(secondOfDay % 60, digits: 2, to: &text)
        text += "."
        append(millisecondOfDay % 1000, digits: 3, to: &text)
        text += "Z"
        return text
    }

    private static let millisecondsPerDay: Int64 = 86_400_000

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        var reader = DigitReader(bytes: bytes)
        guard let year = reader.number(digits: 4), year >= 1, reader.skip("-"),
              let month = reader.number(digits: 2), (1...12).contains(month), reader.skip("-"),
              let day = reader.number(digits: 2), day >= 1, day <= daysIn(month: month, year: year),
              reader.skip("T") || reader.skip("t"),
              let hour = reader.number(digits: 2), hour <= 23, reader.skip(":"),
              let minute = reader.number(digits: 2), minute <= 59, reader.skip(":"),
              let second = reader.number(digits: 2), second <= 60
        else { return nil }

        var millisecond: Int64 = 0
        if reader.skip(".") {
            var fractionDigits = 0
            while let digit = reader.digit() {
                if fractionDigits < 3 { millisecond = millisecond * 10 + digit }
                fractionDigits += 1
            }
            guard fractionDigits > 0 else { return nil }
            for _ in fractionDigits..<max(fractionDigits, 3) { millisecond *= 10 }
        }

        let offsetMinutes: Int64
        if reader.skip("Z") || reader.skip("z") {
            offsetMinutes = 0
        } else {
            let sign: Int64
            if reader.skip("+") { sign = 1 } else if reader.skip("-") { sign = -1 } else { return nil }
            guard let offsetHour = reader.number(digits: 2), offsetHour <= 23, reader.skip(":"),
                  let offsetMinute = reader.number(digits: 2), offsetMinute <= 59
            else { return nil }
            offsetMinutes = sign * (offsetHour * 60 + offsetMinute)
        }
        guard reader.isAtEnd else { return nil }

        let days = daysSinceEpoch(year: year, month: month, day: day)
        let localSeconds = days * 86_400 + hour * 3_600 + minute * 60 + second
        return (localSeconds - offsetMinutes * 60) * 1_000 + millisecond
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    // Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian
    // calendar in 400-year eras, counting from 1970-01-01.

    static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let marchBasedYear = month <= 2 ? year - 1 : year
        let era = marchBasedYear.floorDivided(by: 400).quotient
        let yearOfEra = marchBasedYear - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilDate(daysSinceEpoch days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let (era, dayOfEra) = (days + 719_468).floorDivided(by: 146_097)
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let marchBasedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * marchBasedMonth + 2) / 5 + 1
        let month = marchBasedMonth < 10 ? marchBasedMonth + 3 : marchBasedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func append(_ value: Int64, digits: Int, to text: inout String) {
        let decimal = String(value)
        text += String(repeating: "0", count: max(0, digits - decimal.count)) + decimal
    }
}

/// Reads ASCII fields of fixed width from a timestamp.
private struct DigitReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    var isAtEnd: Bool { position == bytes.count }

    mutating func digit() -> Int64? {
        guard position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) else { return nil }
        defer { position += 1 }
        return Int64(bytes[position] - UInt8(ascii: "0"))
    }

    mutating func number(digits: Int) -> Int64? {
        var value: Int64 = 0
        for _ in 0..<digits {
            guard let digit = digit() else { return nil }
            value = value * 10 + digit
        }
        return value
    }

    mutating func skip(_ character: Unicode.Scalar) -> Bool {
        guard position < bytes.count, bytes[position] == UInt8(ascii: character) else { return false }
        position += 1
        return true
    }
}

extension Int64 {
    /// Quotient rounded toward negative infinity, and a remainder that is never negative.
    func floorDivided(by divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let remainder = self % divisor
        return remainder < 0 ? (self / divisor - 1, remainder + divisor) : (self / divisor, remainder)
    }
}
