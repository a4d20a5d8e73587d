import Testing
import WMSDomain

@Suite struct DecoderVolumeTests {
    /// Twenty thousand events in a row decode, none lost. How fast is measured by
    /// the benchmark (`scripts/bench-drain`: the `decode` step), on a release
    /// build, never by a timed test: on a shared machine a time bound fails
    /// for reasons of its own (it did, under load: 5.4 s against 5).
    @Test func decodesTwentyThousandTypicalEvents() throws {
        let messages = (0..<20_000).map { index in
            var fields = Fixtures.message(.pickComplete)
            fields["eventId"] = .string("evt-\(index)")
            fields["items"] = [
                ["sku": "SKU-1001", "quantity": 3], ["sku": "SKU-2002", "quantity": 1], ["sku": "SKU-3003", "quantity": 12],
            ]
            return Fixtures.bytes(fields)
        }
        let decoded = messages.filter { if case .success = EventDecoder.decode($0) { true } else { false } }.count
        #expect(decoded == messages.count)
    }
}
