/// When a cycle count's variance raises an `INVENTORY_VARIANCE_ALERT` (section 5).
public struct VarianceThresholds: Sendable, Hashable {
    /// Alert when |variance| is above this many units.
    public var absolute: Int64
    /// Alert when |variance| / expectedCount is above this fraction (0.05 is 5%).
    public var fraction: Double

    public init(absolute: Int64 = 10, fraction: Double = 0.05) {
        self.absolute = absolute
        self.fraction = fraction
    }
}

extension CycleCount {
    /// Whether the count is beyond the thresholds: |variance| above the absolute
    /// one, or above the fraction of a non-zero expected count, or stock found
    /// where none was expected.
    public func exceeds(_ thresholds: VarianceThresholds) -> Bool {
        let magnitude = abs(variance)
        if magnitude > thresholds.absolute { return true }
        if expectedCount == 0 { return actualCount > 0 }
        return Double(magnitude) / Double(expectedCount) > thresholds.fraction
    }

    /// variance / expectedCount as a fraction (0.05 for 5%); nil when nothing was
    /// expected. The alert's `percentVariance`.
    public var percentVariance: Double? {
        expectedCount == 0 ? nil : Double(variance) / Double(expectedCount)
    }
}
