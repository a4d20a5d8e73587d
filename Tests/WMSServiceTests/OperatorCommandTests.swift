import Foundation
import Testing
import TestSupport

/// What an operator types: `config`, bad flags, and what reaches the logs.
@Suite struct OperatorCommandTests {
    static let secrets = (
        kafka: "kafka-secret-\(UUID().uuidString.prefix(6))",
        flagRedis: "flag-redis-secret-\(UUID().uuidString.prefix(6))"
    )

    @Test func configShowsEverySettingWithItsSourceAndNoSecret() async throws {
        let f = try await PipelineFixture.create()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("wms-\(f.id).env").path
        try "WMS_KAFKA_GROUP_ID=from-file\nWMS_BACKORDER_POLICY=fill-what-fits\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let environment = f.workerEnvironment.merging([
            "WMS_CONFIG_FILE": file, "WMS_KAFKA_PROPERTIES": "sasl.password=\(Self.secrets.kafka);sasl.username=shown-user",
        ]) { $1 }
        let worker = try WorkerProcess(["config", "--kafka-group-id", "from-flag", "--display-cache-url", "redis://:\(Self.secrets.flagRedis)@cache:6379/3"],
                                       environment: environment)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(30)) } == 0)
        let output = worker.log
        let lines = Dictionary(output.split(separator: "\n").compactMap { line -> (String, [String])? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            return fields.count >= 2 ? (fields[0], Array(fields.dropFirst())) : nil
        }, uniquingKeysWith: { $1 })
        #expect(lines["WMS_KAFKA_GROUP_ID"] == ["flag", "from-flag"])
        #expect(lines["WMS_BACKORDER_POLICY"] == ["file", "fill-what-fits"])
        #expect(lines["WMS_TOPICS"] == ["environment", f.topics.joined(separator: ",")])
        #expect(lines["WMS_SHUTDOWN_TIMEOUT"] == ["default", "30"])
        #expect(lines["WMS_DISPLAY_CACHE_URL"] == ["flag", "redis://:***@cache:6379/3"])
        #expect(lines["WMS_KAFKA_PROPERTIES"] == ["environment", "sasl.password=***;sasl.username=shown-user"])
        for secret in [Self.secrets.kafka, Self.secrets.flagRedis] + Self.passwords() {
            #expect(!output.contains(secret), "a secret in `config`:\n\(output)")
        }

        let json = try WorkerProcess(["config", "--json"], environment: environment)
        #expect(try await blocking { try json.waitForExit(timeout: .seconds(30)) } == 0)
        let decoded = try JSONSerialization.jsonObject(with: Data(json.log.utf8)) as? [[String: String]]
        #expect(decoded?.first { $0["name"] == "WMS_KAFKA_GROUP_ID" }?["source"] == "file")
        try await f.schema.drop()
    }

    /// A port already taken stops the worker at once, naming the setting, instead
    /// of a daemon running blind (and its shutdown still leaves the group).
    @Test func anHTTPAddressInUseStopsTheWorker() async throws {
        let f = try await PipelineFixture.create()
        let taken = try TCPRelay(upstreamHost: "127.0.0.1", upstreamPort: 1)
        let worker = try WorkerProcess(["run", "--http-addr", "127.0.0.1:\(taken.port)"], environment: f.workerEnvironment)
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(30)) } == 1)
        #expect(worker.log.contains("setting WMS_HTTP_ADDR: the HTTP endpoint cannot serve on 127.0.0.1:\(taken.port)"), "\(worker.log)")
        taken.stop()
        try await f.schema.drop()
    }

    /// The example settings file shipped for systemd is one the worker reads.
    @Test func theShippedSettingsFileIsValid() async throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/systemd/wms-worker.env.example").path
        // Empty counts as unset: the required settings must come from the file.
        let worker = try WorkerProcess(["config", "--config-file", example],
                                       environment: ["WMS_KAFKA_BROKERS": "", "WMS_REDIS_URL": "", "WMS_POSTGRES_URL": ""])
        #expect(try await blocking { try worker.waitForExit(timeout: .seconds(30)) } == 0, "\(worker.log)")
        for name in ["WMS_KAFKA_BROKERS", "WMS_REDIS_URL"] {
            #expect(worker.log.split(separator: "\n").contains { $0.hasPrefix(name + " ") && $0.contains(" file ") }, "\(worker.log)")
        }
        #expect(worker.log.contains("WMS_POSTGRES_URL               file         postgresql://wms:***@postgres.example.internal:5432/wms?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt"),
                "\(worker.log)")
        #expect(!worker.log.contains("CHANGE-ME"))
    }

    @Test func aBadFlagOrSettingStopsTheProgramNamingIt() async throws {
        let f = try await PipelineFixture.create()
        for (arguments, environment, message) in [
            (["run", "--kafka-broker", "x"], [:], "Unknown option '--kafka-broker'"),
            (["run", "--http-addr", "nowhere"], [:], "setting WMS_HTTP_ADDR (flag --http-addr): 'nowhere' is not host:port"),
            (["run"], ["WMS_REDIS_URL": "redis://:leaked-\(f.id)@host:notaport/0"], "setting WMS_REDIS_URL: "),
            (["migrate"], ["WMS_POSTGRES_URL": ""], "setting WMS_POSTGRES_URL: is not set"),
            (["config"], ["WMS_LOG_FORMAT": "yaml"], "setting WMS_LOG_FORMAT: 'yaml' is not one of logfmt, json"),
        ] as [([String], [String: String], String)] {
            let worker = try WorkerProcess(arguments, environment: f.workerEnvironment.merging(environment) { $1 })
            let status = try await blocking { try worker.waitForExit(timeout: .seconds(30)) }
            #expect(status != 0, "\(arguments) \(environment)")
            #expect(worker.log.contains(message), "\(arguments): \(worker.log)")
            #expect(!worker.log.contains("leaked-"))
            #expect(!worker.log.contains("connected to"), "it connected before refusing: \(worker.log)")
        }
        try await f.schema.drop()
    }

    /// A run at debug level, with a secret librdkafka property and the real
    /// passwords of Redis and PostgreSQL: none of them reaches a log line.
    @Test func secretsNeverReachTheLogs() async throws {
        let f = try await PipelineFixture.create()
        try await blocking { try f.produce(["{broken", WMSEvents.receiving("\(f.id)-1", at: "FC1", [(f.sku("A"), 2)])]) }
        for format in ["logfmt", "json"] {
            let worker = try WorkerProcess(["run"], environment: f.workerEnvironment.merging([
                // A group per run: each reads the two messages from the start.
                "WMS_KAFKA_GROUP_ID": "\(f.group)-\(format)", "WMS_LOG_LEVEL": "debug", "WMS_LOG_FORMAT": format, "WMS_KAFKA_PROPERTIES": "ssl.key.password=\(Self.secrets.kafka)",
            ]) { $1 })
            let base = try await blocking { try worker.httpBase() }
            _ = await waitForHTTP(base + "/metrics", timeout: .seconds(60)) { metricValue($0?.body ?? "", "wms_dead_letters_total") == 1 }
            worker.signal(SIGTERM)
            #expect(try await blocking { try worker.waitForExit(timeout: .seconds(40)) } == 0)
            let log = worker.log
            #expect(log.contains("connected to PostgreSQL"))
            for secret in [Self.secrets.kafka] + Self.passwords() {
                #expect(!log.contains(secret), "a secret in the \(format) log")
            }
            // Structured: every line parses as the format says, and carries the group.
            let lines = log.split(separator: "\n")
            #expect(lines.count > 5)
            for line in lines {
                if format == "json" {
                    let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
                    #expect(object?["level"] != nil && object?["msg"] != nil, "not a JSON log line: \(line)")
                } else {
                    #expect(line.hasPrefix("time=") && line.contains(" level=") && line.contains(" msg="), "not a logfmt line: \(line)")
                }
            }
            let deadLetterLines = lines.filter { $0.contains("dead-letter") }
            #expect(!deadLetterLines.isEmpty && deadLetterLines.allSatisfy { $0.contains(f.group) && $0.contains("kafka.offsets") })
        }
        try await f.schema.drop()
    }

    /// The passwords of the local services, from their URLs.
    static func passwords() -> [String] {
        [TestEnvironment.redisURL, TestEnvironment.postgresURL].compactMap { URLComponents(string: $0)?.password }.filter { $0.count >= 4 }
    }
}
