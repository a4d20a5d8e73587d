extension JSONValue {
    /// The value as UTF-8 JSON.
    ///
    /// `canonical: true` is the form digests are taken of and messages are sent
    /// in: object keys sorted by their UTF-8 bytes, no whitespace, only `"`, `\`
    /// and control characters escaped, numbers in their canonical form (one
    /// spelling per exact value, see `JSONNumber`: `1.0` and `1` are the same
    /// bytes, `0.1` and `0.10000000000000001` are not).
    ///
    /// `canonical: false` is the same, indented by two spaces per level, for
    /// people (logs, fixtures).
    public func serialized(canonical: Bool) -> [UInt8] {
        serialized(canonical: canonical, reservingCapacity: 256)
    }

    /// As `serialized(canonical:)`, with room for `capacity` bytes from the start
    /// (the size of the message it was parsed from is a good guess).
    func serialized(canonical: Bool, reservingCapacity capacity: Int) -> [UInt8] {
        var writer = JSONWriter(indented: !canonical, capacity: capacity)
        writer.write(self)
        return writer.output
    }
}

struct JSONWriter {
    private(set) var output: [UInt8] = []
    private let indented: Bool
    private var level = 0

    init(indented: Bool, capacity: Int) {
        self.indented = indented
        output.reserveCapacity(capacity)
    }

    mutating func write(_ value: JSONValue) {
        switch value {
        case .object(let members):
            let sorted = members.sorted { Self.precedesInUTF8($0.key, $1.key) }
            writeContainer(sorted, open: UInt8(ascii: "{"), close: UInt8(ascii: "}")) { writer, member in
                writer.write(member.key)
                writer.output.append(UInt8(ascii: ":"))
                if writer.indented { writer.output.append(UInt8(ascii: " ")) }
                writer.write(member.value)
            }
        case .array(let elements):
            writeContainer(elements, open: UInt8(ascii: "["), close: UInt8(ascii: "]")) { writer, element in
                writer.write(element)
            }
        case .string(let text):
            write(text)
        case .number(let number):
            output.append(contentsOf: number.description.utf8)
        case .bool(let flag):
            output.append(contentsOf: flag ? Self.trueBytes : Self.falseBytes)
        case .null:
            output.append(contentsOf: Self.nullBytes)
        }
    }

    private static let trueBytes = Array("true".utf8)
    private static let falseBytes = Array("false".utf8)
    private static let nullBytes = Array("null".utf8)

    private mutating func writeContainer<Elements: Collection>(
        _ elements: Elements, open: UInt8, close: UInt8, writeElement: (inout JSONWriter, Elements.Element) -> Void
    ) {
        output.append(open)
        guard !elements.isEmpty else {
            output.append(close)
            return
        }
        level += 1
        for (index, element) in elements.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            writeLineBreak()
            writeElement(&self, element)
        }
        level -= 1
        writeLineBreak()
        output.append(close)
    }

    private mutating func writeLineBreak() {
        guard indented else { return }
        output.append(UInt8(ascii: "\n"))
        output.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * level))
    }

    mutating func write(_ text: String) {
        output.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return }
            var literalStart = 0
            for index in 0..<bytes.count where base[index] < 0x20 || base[index] == UInt8(ascii: "\"") || base[index] == UInt8(ascii: "\\") {
                output.append(contentsOf: UnsafeBufferPointer(start: base + literalStart, count: index - literalStart))
                writeEscape(of: base[index])
                literalStart = index + 1
            }
            output.append(contentsOf: UnsafeBufferPointer(start: base + literalStart, count: bytes.count - literalStart))
        }
        output.append(UInt8(ascii: "\""))
    }

    /// Byte order of the UTF-8 forms, which canonical keys are sorted in (Swift's
    /// own `<` compares canonically equivalent strings as equal).
    static func precedesInUTF8(_ first: String, _ second: String) -> Bool {
        var (first, second) = (first, second)
        return first.withUTF8 { a in
            second.withUTF8 { b in
                let common = min(a.count, b.count)
                if common > 0, let x = a.baseAddress, let y = b.baseAddress {
                    for index in 0..<common where x[index] != y[index] { return x[index] < y[index] }
                }
                return a.count < b.count
            }
        }
    }

    private mutating func writeEscape(of byte: UInt8) {
        output.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): output.append(byte)
        case 0x08: output.append(UInt8(ascii: "b"))
        case 0x0C: output.append(UInt8(ascii: "f"))
        case 0x0A: output.append(UInt8(ascii: "n"))
        case 0x0D: output.append(UInt8(ascii: "r"))
        case 0x09: output.append(UInt8(ascii: "t"))
        default:
            output.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
            Hex.append(byte, to: &output)
        }
    }
}
