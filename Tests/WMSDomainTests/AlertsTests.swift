import Testing
import WMSDomain

@Suite struct VarianceAlertTests {
    private func count(expected: Int64, actual: Int64) -> CycleCount {
        CycleCount(sku: "SKU-1", expectedCount: expected, actualCount: actual, reason: "count")
    }

    @Test(arguments: [
        // |variance| > 10 units, whatever the fraction.
        (10_000, 10_011, true), (10_000, 9_989, true), (10_000, 10_010, false), (10_000, 9_990, false),
        // |variance| / expected > 5%.
        (100, 106, true), (100, 94, true), (100, 105, false), (100, 95, false),
        (20, 21, false), (19, 20, true), (200, 210, false), (199, 209, true),
        // Stock where none was expected, however little.
        (0, 1, true), (0, 0, false),
        (5, 5, false), (1, 0, true),
    ] as [(Int64, Int64, Bool)])
    func defaultThresholds(expected: Int64, actual: Int64, alerts: Bool) {
        #expect(count(expected: expected, actual: actual).exceeds(VarianceThresholds()) == alerts)
    }

    @Test func thresholdsAreConfigurable() {
        let loose = VarianceThresholds(absolute: 100, fraction: 0.5)
        #expect(VarianceThresholds().absolute == 10 && VarianceThresholds().fraction == 0.05)
        #expect(!count(expected: 100, actual: 140).exceeds(loose))
        #expect(count(expected: 100, actual: 151).exceeds(loose))
        #expect(count(expected: 1_000, actual: 1_101).exceeds(loose))
        #expect(count(expected: 0, actual: 3).exceeds(loose))
    }

    @Test func percentVarianceIsAFraction() {
        #expect(count(expected: 100, actual: 97).percentVariance == -0.03)
        #expect(count(expected: 50, actual: 60).percentVariance == 0.2)
        #expect(count(expected: 0, actual: 4).percentVariance == nil)
    }
}
