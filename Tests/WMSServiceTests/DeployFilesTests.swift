import Foundation
import Testing
import TestSupport

/// The operator files under `deploy/` (systemd unit, image, Kubernetes manifests,
/// Compose stack, Grafana dashboard), checked by `scripts/check-deploy`: they parse,
/// agree with each other and with the worker (probes, port, stop timeouts, settings),
/// and `systemd-analyze verify` accepts the unit.
@Suite("DeployFiles")
struct DeployFiles {
    static let repositoryRoot = URL(filePath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("scripts/check-deploy passes")
    func checkDeployPasses() throws {
        let script = Self.repositoryRoot.appending(path: "scripts/check-deploy")
        let process = Process()
        // Through bash, as scripts/test runs the scripts: a checkout without exec bits works too.
        process.executableURL = URL(filePath: "/usr/bin/env")
        process.arguments = ["bash", script.path]
        process.currentDirectoryURL = Self.repositoryRoot
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try ChildProcesses.start(process)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "scripts/check-deploy exited \(process.terminationStatus):\n\(text)")
    }
}
