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
        // Through bash, as scripts/test runs the scripts: a checkout without exec bits works too.
        let checked = try ChildProcesses.run(["bash", script.path], in: Self.repositoryRoot)
        #expect(checked.status == 0, "scripts/check-deploy exited \(checked.status):\n\(checked.text)")
    }
}
