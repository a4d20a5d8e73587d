import Testing
import WMSDomain

private func parse(_ text: String) throws(JSONParseError) -> JSONValue {
    try JSONValue.parse(Array(text.utf8))
}

private func canonical(_ text: String) throws -> String {
    String(decoding: try parse(text).serialized(canonical: true), as: UTF8.self)
}

@Suite struct JSONParsingTests {
    @Test(arguments: [
        ("{}", [:] as JSONValue),
        (" [ ] ", []),
        ("\"\"", ""),
        ("0", 0),
        ("-0", 0),
        ("42", 42),
        ("-9223372036854775808", .integer(.min)),
        ("9223372036854775807", .integer(.max)),
        ("1.5", 1.5),
        ("-1.25e2", -125.0),
        ("1E3", .double(1000)),
        ("true", true),
        ("false", false),
        ("null", nil),
        ("\t\r\n {\"a\" : [1, {\"b\": null}], \"c\": \"d\"} \n", ["a": [1, ["b": nil]], "c": "d"]),
        ("{\"a\": {\"b\": 1}, \"c\": [{\"b\": 2}, {\"b\": 3}]}", ["a": ["b": 1], "c": [["b": 2], ["b": 3]]]),
    ] as [(String, JSONValue)])
    func parsesValidJSON(text: String, expected: JSONValue) throws {
        #expect(try parse(text) == expected)
    }

    @Test(arguments: [
        ("5", 5), ("5.0", 5), ("5e0", 5), ("50E-1", 5), ("-0", 0), ("-0.0", 0), ("1e18", 1_000_000_000_000_000_000),
        ("9223372036854775807", .max), ("-9223372036854775808.0", .min),
    ] as [(String, Int64)])
    func anIntegralNumberWithinInt64IsAnInteger(text: String, integer: Int64) throws {
        #expect(try parse(text).integerValue == integer)
        #expect(try parse(text) == .integer(integer))
    }

    @Test(arguments: ["5.5", "5.0000000000000001", "0.99999999999999999", "9223372036854775808", "-9223372036854775809", "1e400", "1e-400", "\"5\"", "true"])
    func anyOtherValueIsNoInteger(text: String) throws {
        #expect(try parse(text).integerValue == nil)
    }

    @Test func parsedNumbersCompareByExactValue() throws {
        #expect(try parse("1.0") == parse("1e0"))
        #expect(try parse("[0.1]") == parse("[1e-1]"))
        #expect(try parse("12345678901234567890") != parse("12345678901234567891"))
        #expect(try parse("0.1") != parse("0.10000000000000001"))
        #expect(try parse("1e400").hashValue == parse("10e399").hashValue)
    }

    @Test(arguments: [
        (#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{8}\u{C}\n\r\t"),
        (#""\u0041\u00e9\u20AC""#, "Aé€"),
        (#""\ud83d\ude00""#, "😀"),
        (#""\u0000""#, "\u{0}"),
        ("\"é€😀\u{7F}\"", "é€😀\u{7F}"),
        (#""a\nb""#, "a\nb"),
    ])
    func decodesStringEscapes(text: String, expected: String) throws {
        #expect(try parse(text) == .string(expected))
    }

    @Test(arguments: [
        ("", "unexpected end of input, expected a value", 0),
        ("{", "unexpected end of input, expected a string key", 1),
        ("{\"a\":1", "unexpected end of input, expected ',' or '}'", 6),
        ("[1,]", "unexpected ']', expected a value", 3),
        ("{\"a\":1,}", "unexpected '}', expected a string key", 7),
        ("{'a':1}", "unexpected ''', expected a string key", 1),
        ("{\"a\" 1}", "unexpected '1', expected ':'", 5),
        ("[1 2]", "unexpected '2', expected ',' or ']'", 3),
        ("{} x", "unexpected 'x', expected the end of the input", 3),
        ("01", "leading zeros are not allowed in numbers", 0),
        ("-", "unexpected end of input, expected a digit", 1),
        ("1.", "unexpected end of input, expected a digit", 2),
        ("1e+", "unexpected end of input, expected a digit", 3),
        (".5", "unexpected '.', expected a value", 0),
        ("+1", "unexpected '+', expected a value", 0),
        ("{\"a\":1,\"a\":2}", "duplicate name \"a\"", 7),
        ("[{\"a\":1},{\"b\":{\"c\":[],\"c\":[]}}]", "duplicate name \"c\"", 22),
        (#"{"a\"b":1,"a\u0022b":2}"#, #"duplicate name "a\"b""#, 10),
        // Canonically equivalent names (é, e + U+0301) are one Swift dictionary key.
        ("{\"\u{E9}\":1,\"e\u{301}\":2}", "duplicate name \"e\u{301}\"", 8),
        ("{\"\(String(repeating: "n", count: 100))\":1,\"\(String(repeating: "n", count: 100))\":1}",
         "duplicate name \"\(String(repeating: "n", count: 64))…\"", 106),
        ("NaN", "unexpected 'N', expected a value", 0),
        ("tru", "invalid literal, expected 'true'", 0),
        ("nul", "invalid literal, expected 'null'", 0),
        ("\"abc", "unexpected end of input, expected '\"' to close the string", 4),
        ("\"a\nb\"", "control character in string must be escaped", 2),
        ("\"a\tb\"", "control character in string must be escaped", 2),
        (#""\x""#, "invalid escape sequence", 1),
        (#""\u12G4""#, "unexpected 'G', expected a hex digit", 5),
        (#""\ud800""#, "unpaired surrogate escape", 1),
        (#""\ud800\u0041""#, "unpaired surrogate escape", 1),
        (#""\udc00""#, "unpaired surrogate escape", 1),
        ("\u{FEFF}{}", "a byte order mark is not allowed", 0),
        ("\u{A0}1", "unexpected byte 0xC2, expected a value", 0),
    ] as [(String, String, Int)])
    func rejectsInvalidJSON(text: String, message: String, offset: Int) {
        #expect(throws: JSONParseError(message: message, offset: offset)) { try parse(text) }
    }

    @Test(arguments: [
        [0xC3] as [UInt8],                      // truncated sequence
        [0xC0, 0x80],                           // overlong NUL
        [0xE0, 0x80, 0x80],                     // overlong
        [0xED, 0xA0, 0x80],                     // encoded surrogate
        [0xF4, 0x90, 0x80, 0x80],               // above U+10FFFF
        [0xF5, 0x80, 0x80, 0x80],
        [0xFF],
        [0x80],                                 // lone continuation byte
        [0xE2, 0x82],                           // truncated 3-byte sequence
    ])
    func rejectsInvalidUTF8InStrings(sequence: [UInt8]) {
        let bytes = Array("\"ab".utf8) + sequence + Array("cd\"".utf8)
        #expect(throws: JSONParseError(message: "invalid UTF-8", offset: 3)) { try JSONValue.parse(bytes) }
    }

    @Test func acceptsEveryUTF8Length() throws {
        let text = "\"a\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}\""
        #expect(try parse(text) == .string("a\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}"))
    }

    @Test func limitsNestingDepth() throws {
        let deepest = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        _ = try parse(deepest)
        let tooDeep = String(repeating: "[", count: JSONValue.maxDepth + 1) + String(repeating: "]", count: JSONValue.maxDepth + 1)
        #expect(throws: JSONParseError(message: "nesting deeper than 64 levels", offset: 64)) { try parse(tooDeep) }
        let hostile = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { try parse(hostile) }
    }

    @Test func describesErrorsWithTheirOffset() {
        #expect(JSONParseError(message: "invalid UTF-8", offset: 7).description == "invalid UTF-8 at byte 7")
    }
}

@Suite struct JSONWritingTests {
    @Test func canonicalFormSortsKeysByBytesAndDropsWhitespace() throws {
        #expect(try canonical(#"{ "b": 1, "a": [true, null, {"z": "x", "é": 1, "Z": 2, "aa": 3}] }"#)
            == #"{"a":[true,null,{"Z":2,"aa":3,"z":"x","é":1}],"b":1}"#)
    }

    @Test func keyOrderAndWhitespaceDoNotChangeTheBytes() throws {
        let first = try parse(#"{"eventId":"e1","items":[{"sku":"A","quantity":1}],"n":2.50}"#)
        let second = try parse("{\n  \"n\" : 2.5 ,\"items\":[ {\"quantity\":1, \"sku\":\"A\"} ],\r\n\t\"eventId\":\"e1\"}")
        #expect(first.serialized(canonical: true) == second.serialized(canonical: true))
        #expect(first == second)
        #expect(first.hashValue == second.hashValue)
    }

    @Test func integralDoublesAreIntegers() throws {
        #expect(try canonical("[1.0, 1, 1e0, -0.0, 10E2, 9007199254740992.0]") == "[1,1,1,0,1000,9007199254740992]")
        #expect(try parse("1.0") == parse("1"))
        #expect(JSONValue.double(5).hashValue == JSONValue.integer(5).hashValue)
        #expect(JSONValue.double(5).integerValue == 5)
        #expect(JSONValue.double(5.5).integerValue == nil)
    }

    @Test func otherDoublesUseTheShortestForm() throws {
        #expect(try canonical("[0.1, 1.5e300, -2.5E-7]") == "[0.1,1.5e+300,-2.5e-07]")
        #expect(JSONValue.double(.nan).serialized(canonical: true) == Array("null".utf8))
        #expect(JSONValue.double(.infinity).serialized(canonical: true) == Array("null".utf8))
    }

    @Test func numbersBuiltInSwiftEqualTheirParsedText() throws {
        #expect(JSONValue.double(0.1) == (try parse("0.1")))
        #expect(JSONValue.double(-0.03) == (try parse("-3e-2")))
        #expect(JSONValue.double(1e16) == (try parse("10000000000000000")))
        #expect(JSONValue.integer(-7) == (try parse("-7.0")))
        #expect(JSONNumber(.infinity) == nil)
        #expect(JSONNumber(-0.0)?.description == "0")
        #expect(try parse("2.50").numberValue?.description == "2.5")
        #expect(JSONValue.string("5").numberValue == nil)
    }

    @Test func writesIntegersInDecimal() {
        #expect(JSONValue.integer(.min).description == "-9223372036854775808")
        #expect(JSONValue.integer(.max).description == "9223372036854775807")
        #expect(JSONValue.integer(0).description == "0")
        #expect(JSONValue.integer(-7).description == "-7")
    }

    @Test func escapesOnlyQuotesBackslashesAndControlCharacters() {
        let text = "q\"b\\s/\u{8}\u{C}\n\r\t\u{0}\u{1F}\u{7F}é😀"
        #expect(JSONValue.string(text).description == #""q\"b\\s/\b\f\n\r\t\u0000\u001f"# + "\u{7F}é😀\"")
    }

    @Test(arguments: [
        #"{"a":[1,2.5,"x",{"b":null}],"c":true,"d":{}}"#,
        #"["\u0000\n",-0.001,[],{"é":"😀"}]"#,
        #""plain""#,
    ])
    func roundTrips(text: String) throws {
        let value = try parse(text)
        #expect(try JSONValue.parse(value.serialized(canonical: true)) == value)
        #expect(try JSONValue.parse(value.serialized(canonical: false)) == value)
    }

    @Test func differentValuesDifferentBytes() throws {
        let base = try parse(#"{"a":1,"b":"x"}"#)
        for other in [#"{"a":2,"b":"x"}"#, #"{"a":1,"b":"y"}"#, #"{"a":1,"b":"x","c":null}"#, #"{"a":"1","b":"x"}"#] {
            let changed = try parse(other)
            #expect(changed != base)
            #expect(SHA256.hex(changed.serialized(canonical: true)) != SHA256.hex(base.serialized(canonical: true)))
        }
    }

    @Test func indentedFormIsForPeople() {
        let value: JSONValue = ["b": [1, 2], "a": "x", "c": [:], "d": []]
        let expected = """
            {
              "a": "x",
              "b": [
                1,
                2
              ],
              "c": {},
              "d": []
            }
            """
        #expect(String(decoding: value.serialized(canonical: false), as: UTF8.self) == expected)
    }

    @Test func literalsBuildOutboundMessages() {
        let quantity: Int64 = 3
        let percent: Double? = nil
        let message: JSONValue = [
            "type": "ALLOCATION", "lines": [["lineId": "L1", "quantity": .integer(quantity)]],
            "percentVariance": JSONValue(percent), "ok": true, "ratio": 0.5,
        ]
        #expect(message.description == #"{"lines":[{"lineId":"L1","quantity":3}],"ok":true,"percentVariance":null,"ratio":0.5,"type":"ALLOCATION"}"#)
        #expect(message["lines"]?[0]?["quantity"]?.integerValue == 3)
        #expect(message["type"]?.stringValue == "ALLOCATION")
        #expect(message["missing"] == nil)
        #expect(message["lines"]?[5] == nil)
    }
}

/// The canonical number form. PostgreSQL keeps digests of payloads applied
/// before, so every number the writer already wrote exactly keeps its bytes;
/// the rest is now exact.
@Suite struct CanonicalNumberTests {
    /// What the writer made of these before numbers became exact (and still must).
    @Test(arguments: [
        ("0", "0"), ("-0", "0"), ("-0.0", "0"), ("0.0", "0"), ("0e5", "0"), ("1.0", "1"), ("1e0", "1"), ("10e-1", "1"),
        ("1.5", "1.5"), ("1e3", "1000"), ("0.10", "0.1"), ("2.50", "2.5"), ("-2.5E-7", "-2.5e-07"), ("1.5e300", "1.5e+300"),
        ("0.0001", "0.0001"), ("0.00001", "1e-05"), ("0.00012", "0.00012"), ("1e15", "1000000000000000"), ("1e19", "1e+19"),
        ("9007199254740992.0", "9007199254740992"), ("9007199254740993", "9007199254740993"), ("123456789012.5", "123456789012.5"),
        ("9223372036854775807", "9223372036854775807"), ("-9223372036854775808", "-9223372036854775808"),
        ("0.30000000000000004", "0.30000000000000004"), ("1e-7", "1e-07"), ("123e-2", "1.23"), ("2.5e-5", "2.5e-05"),
        ("1e22", "1e+22"), ("4503599627370495.5", "4503599627370495.5"), ("1234567890123456.5", "1234567890123456.5"),
        ("-1.25e2", "-125"), ("3E+0", "3"),
    ])
    func numbersWrittenExactlyBeforeKeepTheirBytes(text: String, written: String) throws {
        #expect(try canonical(text) == written)
    }

    /// Where the writer lost digits or merged values (through Double), or spelled
    /// one integer two ways (`1e16` and `10000000000000000`).
    @Test(arguments: [
        ("12345678901234567890", "1.234567890123456789e+19"), ("9223372036854775808", "9.223372036854775808e+18"),
        ("-9223372036854775809", "-9.223372036854775809e+18"), ("1e400", "1e+400"), ("-1E400", "-1e+400"), ("1e-400", "1e-400"),
        ("5.0000000000000001", "5.0000000000000001"), ("1e16", "10000000000000000"), ("1e17", "100000000000000000"),
        ("18014398509481984.0", "18014398509481984"), ("18014398509481985.5", "1.80143985094819855e+16"),
        ("1E+0000000000000000000000000000000000002", "100"),
    ])
    func numbersBeyondDoubleAreExact(text: String, written: String) throws {
        #expect(try canonical(text) == written)
    }

    /// Exponents of any length: the value stays exact however far the exponent
    /// is from what 64 bits hold.
    @Test(arguments: [
        ("1e99999999999999999999", "1e+99999999999999999999"), ("10e99999999999999999999", "1e+100000000000000000000"),
        ("0.01e100000000000000000000", "1e+99999999999999999998"), ("0.001e-99999999999999999999", "1e-100000000000000000002"),
        ("12.5e-99999999999999999999", "1.25e-99999999999999999998"), ("-0.5e100000000000000000000", "-5e+99999999999999999999"),
        ("1e999999999999999999", "1e+999999999999999999"), ("0.1e1000000000000000000", "1e+999999999999999999"),
        ("100e-1000000000000000001", "1e-999999999999999999"), ("0.1e-999999999999999999", "1e-1000000000000000000"),
        ("0e99999999999999999999", "0"),
    ])
    func exponentsOfAnyLength(text: String, written: String) throws {
        #expect(try canonical(text) == written)
    }

    /// Swift's shortest form of any Double, read back, is written as the writer
    /// wrote that Double before: as an integer when integral within ±2^53,
    /// otherwise as that shortest form.
    @Test func everyDoubleKeepsItsFormerBytes() throws {
        var generator = SplitMix64(seed: 0x5EED)
        var checked = 0
        while checked < 20_000 {
            let number = checked.isMultiple(of: 2)
                ? Double(bitPattern: generator.next())
                : Double(Int64.random(in: -10_000_000_000...10_000_000_000, using: &generator)) / pow10(Int.random(in: 0...12, using: &generator))
            let isIntegral = number.rounded(.towardZero) == number
            // Integral values above 2^53 are written as integers now, as their integer tokens always were.
            guard number.isFinite, !(isIntegral && abs(number) > 0x1p53 && abs(number) < 0x1p63) else { continue }
            let former = isIntegral && abs(number) <= 0x1p53 ? String(Int64(number)) : number.description
            #expect(try canonical(number.description) == former, "\(number)")
            checked += 1
        }
    }

    private func pow10(_ exponent: Int) -> Double {
        (0..<exponent).reduce(1) { power, _ in power * 10 }
    }
}

/// A seeded generator, so that a failure can be run again.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
