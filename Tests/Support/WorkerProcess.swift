import Foundation

/// The built `wms-worker` binary, run as operators run it: for what only a separate
/// process can show (a crash, a signal, the exit status).
public final class WorkerProcess: @unchecked Sendable {
    public let process = Process()
    public let logURL: URL

    /// `scripts/test` sets WMS_WORKER_BIN; otherwise the debug build beside the sources.
    public static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["WMS_WORKER_BIN"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/wms-worker")
    }

    public init(_ arguments: [String], environment: [String: String]) throws {
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("wms-worker-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = Self.binary
        process.arguments = arguments
        // A free port unless the test names one: workers run side by side. Not
        // port 0: see `TCPRelay.freePort`.
        let http = "127.0.0.1:\(try TCPRelay.freePort())"
        process.environment = ProcessInfo.processInfo.environment.merging(["WMS_HTTP_ADDR": http]) { $1 }.merging(environment) { $1 }
            .merging(testMarker) { $1 }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Runs to the end and returns the exit status.
    public static func run(_ arguments: [String], environment: [String: String], timeout: Duration = .seconds(60)) throws -> Int32 {
        let worker = try WorkerProcess(arguments, environment: environment)
        return try worker.waitForExit(timeout: timeout)
    }

    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// The HTTP endpoint's base URL, from the worker's "HTTP listening" log line.
    public func httpBase(timeout: Duration = .seconds(30)) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            // logfmt `http.address=HOST:PORT` or JSON `"http.address":"HOST:PORT"`.
            if let line = log.split(separator: "\n").first(where: { $0.contains("HTTP listening") }),
               let match = line.firstMatch(of: /http\.address"?[=:]"?([0-9A-Za-z.\-\[\]:]+:[0-9]+)/) {
                return "http://" + match.1
            }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        throw TimedOut(log: log)
    }

    /// Waits until the worker's log holds `text` (say, "Kafka partitions assigned":
    /// it runs its consume loop, and a SIGTERM is a graceful stop, not one that
    /// lands before its handlers are in place).
    public func waitForLog(_ text: String, timeout: Duration = .seconds(60)) throws {
        let deadline = ContinuousClock.now + timeout
        while !log.contains(text) {
            guard process.isRunning, ContinuousClock.now < deadline else { throw TimedOut(log: log) }
            usleep(50_000)
        }
    }

    /// The exit status, or for a process ended by a signal, 128 + the signal.
    public func waitForExit(timeout: Duration) throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw TimedOut(log: log)
            }
            usleep(50_000)
        }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    public struct TimedOut: Error, CustomStringConvertible {
        public let log: String
        public var description: String { "wms-worker did not exit in time; its log:\n\(log.suffix(4000))" }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }
}
