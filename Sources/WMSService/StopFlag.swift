import Foundation
import Synchronization

/// Set once when the daemon should stop; read by blocking loops between steps.
public final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    public init() {}

    public var isRaised: Bool { raised.load(ordering: .relaxed) }

    public func raise() { raised.store(true, ordering: .relaxed) }

    /// Sleeps for `duration`, waking early when the flag is raised.
    public func sleep(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !isRaised, ContinuousClock.now < deadline {
            usleep(20_000)
        }
    }
}
