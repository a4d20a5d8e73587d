import Foundation

/// Starting a child process and setting a mock broker down never overlap.
///
/// librdkafka's mock broker, set down, closes its listening socket and binds the
/// same port again at once, so that clients find it there when it comes back; it
/// aborts the process if it cannot ("Failed to create mock broker listener"). A
/// child being spawned holds a copy of every descriptor of the test process until
/// its `exec` closes them (close-on-exec), the listening socket included: the port
/// is still taken for that moment (seen in CI while a test started a Redis).
/// `Process.run` returns once the child has exec'd.
public enum ChildProcesses {
    private static let lock = NSLock()

    public static func start(_ process: Process) throws {
        try noneStarting { try process.run() }
    }

    /// Runs `body` (a mock broker set down or up) while no child process starts.
    public static func noneStarting<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
