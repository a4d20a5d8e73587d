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

    /// A finished child process: its exit status and what it printed.
    public struct Finished: Sendable {
        public var status: Int32
        /// Standard output, with standard error unless the run kept them apart.
        public var output: Data
        public var errors: Data

        public var text: String { String(decoding: output, as: UTF8.self) }
    }

    /// Runs `command` (its first word found on PATH) to its end, with `input` on
    /// its standard input. Standard error goes with the output unless `errorsApart`.
    public static func run(_ command: [String], input: Data? = nil, in directory: URL? = nil,
                           errorsApart: Bool = false) throws -> Finished {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.currentDirectoryURL = directory
        let stdin = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = stdin
        process.standardOutput = output
        process.standardError = errorsApart ? errors : output
        try start(process)
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        // Standard output to its end first: what goes apart on standard error is short.
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        let reported = errorsApart ? errors.fileHandleForReading.readDataToEndOfFile() : Data()
        process.waitUntilExit()
        return Finished(status: process.terminationStatus, output: printed, errors: reported)
    }

    /// Runs `body` (a mock broker set down or up) while no child process starts.
    public static func noneStarting<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
