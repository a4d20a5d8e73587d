import Foundation
import Synchronization

/// A TCP relay in front of a real server: the worker connects through it, and the
/// test cuts it (every connection reset, the port refusing) and restores it on the
/// same port. To the worker that is the server going down and coming back.
public final class TCPRelay: @unchecked Sendable {
    public let port: UInt16
    private let upstreamHost: String
    /// Where connections go; `moveUpstream` changes it.
    private var upstreamPort: UInt16
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var sockets: Set<Int32> = []
    private let paused = Paused()

    /// A server that hangs: connections stay open, nothing passes either way.
    public func pause() { paused.set(true) }
    public func resume() { paused.set(false) }

    /// A slow server (or network): each chunk waits this long before it passes on.
    public func setLatency(_ latency: Duration) { faults.withLock { $0.latency = latency } }

    /// Where the next PostgreSQL `COMMIT` is cut: before it reaches the server
    /// (the transaction rolls back), or after (it commits, and its answer is lost).
    public enum CommitCut: Sendable { case beforeTheServer, afterTheServer }

    /// Resets the connection that sends the next `COMMIT`,
    /// at `cut`; the relay keeps listening, so the client reconnects.
    public func cutNextCommit(_ cut: CommitCut) { faults.withLock { $0.commitCut = cut; $0.commitCutDone = false } }

    /// Whether the armed cut has happened.
    public var commitWasCut: Bool { faults.withLock { $0.commitCutDone } }

    private struct Faults: Sendable {
        var latency: Duration = .zero
        var commitCut: CommitCut?
        var commitCutDone = false
    }

    private let faults = Mutex(Faults())

    private final class Paused: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set(_ paused: Bool) { lock.withLock { value = paused } }
        var isSet: Bool { lock.withLock { value } }
    }

    public init(upstreamHost: String, upstreamPort: UInt16) throws {
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        port = try Self.freePort()
        try start()
    }

    /// Listens again on the same port.
    public func start() throws {
        let listener = try Self.listen(port: port)
        lock.withLock { self.listener = listener }
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                guard let upstream = try? Self.connect(host: upstreamHost, port: lock.withLock({ upstreamPort })) else {
                    close(client)
                    continue
                }
                let open = lock.withLock { () -> Bool in
                    guard self.listener == listener else { return false }
                    sockets.formUnion([client, upstream])
                    return true
                }
                guard open else {
                    close(client)
                    close(upstream)
                    return
                }
                let pair = Pair(client: client, upstream: upstream)
                for (from, to) in [(client, upstream), (upstream, client)] {
                    Thread.detachNewThread { [self] in pump(from: from, to: to, pair: pair) }
                }
            }
        }
    }

    /// Sends the connections made from now on to another server, and resets
    /// those open: the address the worker knows now names another server (a
    /// failover behind a virtual IP or a DNS name).
    public func moveUpstream(to port: UInt16) {
        lock.withLock {
            upstreamPort = port
            for socket in sockets { shutdown(socket, Int32(SHUT_RDWR)) }
            sockets.removeAll()
        }
    }

    /// Resets every connection and stops listening: connecting is refused.
    public func stop() {
        lock.withLock {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
            listener = -1
            for socket in sockets { shutdown(socket, Int32(SHUT_RDWR)) }
            sockets.removeAll()
        }
    }

    deinit { stop() }

    /// One client's connection and its upstream one; whether a COMMIT passed
    /// upstream whose answer is to be lost.
    private final class Pair: @unchecked Sendable {
        let client: Int32
        let upstream: Int32
        let lock = NSLock()
        var cutAtAnswer = false
        init(client: Int32, upstream: Int32) {
            self.client = client
            self.upstream = upstream
        }

        func reset() {
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
        }
    }

    /// A COMMIT as libpq's `PQexecParams` sends it: a Parse message of the unnamed
    /// statement (an empty name, then the text), NUL-terminated.
    private static let commitQuery: [UInt8] = [0] + Array("COMMIT".utf8) + [0]

    private func pump(from: Int32, to: Int32, pair: Pair) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let towardsServer = from == pair.client
        while true {
            let count = read(from, &buffer, buffer.count)
            guard count > 0 else { break }
            while paused.isSet { usleep(10_000) }
            let latency = faults.withLock { $0.latency }
            if latency > .zero { Thread.sleep(forTimeInterval: latency / .seconds(1)) }
            if towardsServer, buffer[..<count].firstRange(of: Self.commitQuery) != nil,
               let cut = faults.withLock({ faults -> CommitCut? in
                   defer { faults.commitCut = nil }
                   return faults.commitCut
               }) {
                if cut == .beforeTheServer {
                    faults.withLock { $0.commitCutDone = true }
                    pair.reset()
                    break
                }
                pair.lock.withLock { pair.cutAtAnswer = true }
            } else if !towardsServer, pair.lock.withLock({ pair.cutAtAnswer }) {
                faults.withLock { $0.commitCutDone = true }
                pair.reset()
                break
            }
            var sent = 0
            while sent < count {
                // send with MSG_NOSIGNAL: a peer gone must not SIGPIPE the test process.
                let written = buffer[sent..<count].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { break }
                sent += written
            }
            guard sent == count else { break }
        }
        shutdown(from, Int32(SHUT_RDWR))
        shutdown(to, Int32(SHUT_RDWR))
    }

    private static func listen(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            close(fd)
            throw RelayError(description: "cannot listen on 127.0.0.1:\(port): errno \(errno)")
        }
        return fd
    }

    /// A port no one listens on, below the kernel's ephemeral range (from 32768):
    /// a port the kernel hands out may be one that an in-process mock broker,
    /// set down for a while, must listen on again (librdkafka aborts if it
    /// cannot). Handed out in turn, never twice by one test process: a worker
    /// binds its port a moment after it was found free.
    public static func freePort() throws -> UInt16 {
        for _ in 0..<200 {
            let port = UInt16(20_000 + nextPort.wrappingAdd(1, ordering: .relaxed).oldValue % 12_000)
            guard let fd = try? listen(port: port) else { continue }
            close(fd)
            return port
        }
        throw RelayError(description: "no free port in 20000..<32000")
    }

    /// Where `freePort` looks next; test processes started one after another begin apart.
    private static let nextPort = Atomic<Int>(Int(getpid()) * 397 % 12_000)

    private static func connect(host: String, port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else {
            close(fd)
            throw RelayError(description: "cannot connect to \(host):\(port)")
        }
        return fd
    }

    public struct RelayError: Error, CustomStringConvertible {
        public let description: String
    }
}

/// A Redis server of the test's own, killed and started again (same port, no
/// persistence): for what a Redis outage does.
public final class PrivateRedis: @unchecked Sendable {
    public let port: UInt16
    private var process: Process?

    /// Extra `redis-server` arguments (`--maxmemory`, ...), for every start.
    private let arguments: [String]

    public init(arguments: [String] = []) throws {
        port = try TCPRelay.freePort()
        self.arguments = arguments
        try start()
    }

    public var url: String { "redis://127.0.0.1:\(port)/0" }

    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"] + arguments
        // Its directory marks it as a test's (redis-server overwrites its
        // environment with its process title): see `testMarker`.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wms-test-redis-\(port)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ChildProcesses.start(process)
        self.process = process
        // Ready when it accepts a connection.
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if connected == 0 { return }
            usleep(50_000)
        }
        throw TCPRelay.RelayError(description: "redis-server did not start on port \(port)")
    }

    /// Kills the server (SIGKILL: a child spawned from a test thread may have
    /// SIGTERM blocked) and waits until it is gone.
    public func stop() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        while process.isRunning { usleep(20_000) }
        self.process = nil
    }

    deinit { stop() }
}
