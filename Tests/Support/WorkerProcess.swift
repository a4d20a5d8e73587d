import Foundation

/// The built `wms-worker` binary, run as operators run it: for what only a separate
/// process can show (a crash, a signal, the exit status).
public final class WorkerProcess: @unchecked Sendable {
    public private(set) var process: Process
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
        // A free port unless the test names one: workers run side by side. Not
        // port 0: see `TCPRelay.freePort`. A port found free can be taken by
        // another process before the worker binds it (seen once in CI): the
        // daemon then stops at once naming it, and starts again on another.
        var http = "127.0.0.1:\(try TCPRelay.freePort())"
        process = try Self.launch(arguments, environment: environment, http: http, log: logURL)
        var attempts = 1
        while arguments.first == "run", attempts < 4, !Self.bound(process, http, log: logURL) {
            http = "127.0.0.1:\(try TCPRelay.freePort())"
            process = try Self.launch(arguments, environment: environment, http: http, log: logURL)
            attempts += 1
        }
    }

    private static func launch(_ arguments: [String], environment: [String: String], http: String, log url: URL) throws -> Process {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let log = try FileHandle(forWritingTo: url)
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["WMS_HTTP_ADDR": http]) { $1 }.merging(environment) { $1 }
            .merging(testMarker) { $1 }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try ChildProcesses.start(process)
        return process
    }

    /// False only when the worker stopped because `http`, the port this harness
    /// chose, was in use; true once it listens, or if it stopped for another reason.
    private static func bound(_ process: Process, _ http: String, log url: URL) -> Bool {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let log = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
            if log.contains("HTTP listening") { return true }
            guard process.isRunning else {
                process.waitUntilExit()
                return !log.contains("cannot serve on \(http)")
            }
            usleep(50_000)
        }
        return true
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
        throw TimedOut(log: log, waitingFor: "its HTTP endpoint", exited: !process.isRunning)
    }

    /// Waits until the worker's log holds `text` (say, "Kafka partitions assigned":
    /// it runs its consume loop, and a SIGTERM is a graceful stop, not one that
    /// lands before its handlers are in place).
    public func waitForLog(_ text: String, timeout: Duration = .seconds(60)) throws {
        let deadline = ContinuousClock.now + timeout
        while !log.contains(text) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw TimedOut(log: log, waitingFor: "'\(text)' in its log", exited: !process.isRunning)
            }
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
                throw TimedOut(log: log, waitingFor: "its exit", exited: false)
            }
            usleep(50_000)
        }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    public struct TimedOut: Error, CustomStringConvertible {
        public let log: String
        public let waitingFor: String
        /// Whether the worker had exited: then what the test waited for never came.
        public let exited: Bool
        public var description: String {
            "wms-worker \(exited ? "exited" : "was still running") without \(waitingFor); its log:\n\(log.suffix(4000))"
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }
}
