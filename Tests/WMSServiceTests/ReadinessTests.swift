import Foundation
import Testing
import TestSupport

/// `/readyz` follows the stores: not ready while Redis or PostgreSQL is down, ready
/// again when it returns; `/healthz` answers throughout.
@Suite struct ReadinessTests {
    @Test func readyzFollowsRedisAndPostgresDownAndBack() async throws {
        let f = try await PipelineFixture.create()
        let redis = try PrivateRedis()
        let postgres = try TCPRelay(upstreamHost: "127.0.0.1", upstreamPort: Self.port(of: TestEnvironment.postgresURL))
        let postgresURL = f.schema.url.replacingOccurrences(of: ":\(Self.port(of: TestEnvironment.postgresURL))/", with: ":\(postgres.port)/")
        #expect(postgresURL != f.schema.url)
        let worker = try WorkerProcess(["run"], environment: f.workerEnvironment.merging([
            "WMS_REDIS_URL": redis.url, "WMS_POSTGRES_URL": postgresURL,
        ]) { $1 })
        let base = try await blocking { try worker.httpBase() }
        // Ready again can take two retry backoffs (30 s at most each) after a
        // store returns: the retry that finds it back, then, after a Redis that
        // restarted empty, the one that repairs it (README, known limits).
        func readyz(_ ready: Bool) async -> String {
            let answer = await waitForHTTP(base + "/readyz", timeout: .seconds(ready ? 75 : 30)) { $0?.status == (ready ? 200 : 503) }
            #expect(answer?.status == (ready ? 200 : 503), "readyz: \(answer?.body ?? "no answer")\n\(worker.log.suffix(2000))")
            return answer?.body ?? ""
        }

        _ = await readyz(true)
        redis.stop()
        let redisDown = await readyz(false)
        #expect(redisDown.contains(#""redis":{"detail":"#) && redisDown.contains(#""ok":false"#))
        #expect(await httpGet(base + "/healthz")?.status == 200)
        // The probe updates the gauge on its own round, which may come after the
        // pipeline found Redis gone (an idle worker checks Redis every second).
        let metrics = await waitForHTTP(base + "/metrics", timeout: .seconds(15)) {
            metricValue($0?.body ?? "", #"wms_dependency_up{dependency="redis"}"#) == 0
        }?.body ?? ""
        #expect(metricValue(metrics, #"wms_dependency_up{dependency="redis"}"#) == 0)
        #expect(metricValue(metrics, "wms_ready") == 0)
        try redis.start()
        _ = await readyz(true)

        postgres.stop()
        let postgresDown = await readyz(false)
        #expect(postgresDown.contains(#""postgres":{"detail":"#))
        try postgres.start()
        _ = await readyz(true)
        #expect(metricValue(await httpGet(base + "/metrics")?.body ?? "", "wms_ready") == 1)

        worker.signal(SIGTERM)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
        try await f.schema.drop()
    }

    static func port(of url: String) -> UInt16 {
        UInt16(URLComponents(string: url)?.port ?? 5432)
    }
}
