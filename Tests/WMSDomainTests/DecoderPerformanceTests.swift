import Testing
import WMSDomain

@Suite struct DecoderPerformanceTests {
    /// A loose bound, in debug builds, that only catches pathologies (quadratic
    /// work, runaway allocation); throughput is measured on release builds.
    @Test func decodesTwentyThousandTypicalEventsQuickly() throws {
        let messages = (0..<20_000).map { index in
            var fields = Fixtures.message(.pickComplete)
            fields["eventId"] = .string("evt-\(index)")
            fields["items"] = [
                ["sku": "SKU-1001", "quantity": 3], ["sku": "SKU-2002", "quantity": 1], ["sku": "SKU-3003", "quantity": 12],
            ]
            return Fixtures.bytes(fields)
        }
        var decoded = 0
        let elapsed = ContinuousClock().measure {
            for message in messages {
                if case .success = EventDecoder.decode(message) { decoded += 1 }
            }
        }
        #expect(decoded == messages.count)
        #expect(elapsed < .seconds(5), "decoding 20,000 events took \(elapsed)")
    }
}
