// swift-tools-version:6.1
import PackageDescription

// Layout (one responsibility per target):
//   CRdKafka, CHiredis, CLibPQ   thin system-library targets over the C libraries
//   BlockingIO                    dedicated threads for blocking C calls (never the cooperative pool)
//   Kafka, Redis, Postgres        safe Swift wrappers; C types stay internal
//   WMSSchemas (folder Schemas/) PostgreSQL migrations shipped as resources
//   WMSStore                      the worker's PostgreSQL side: migrations, later the batch SQL
//   WMSOperations                 what operators run: settings (env, file, flags), replay, reconcile
//   WMSService                    the daemon's services: pipeline, HTTP health and metrics, logs, shutdown
//   wms-worker                    the daemon's executable (argument parsing only)
//   wms-dev-broker                librdkafka's mock cluster as a local Kafka broker for dev and tests
//   WMSSimulation                 generated warehouse days and hostile input, free of I/O
//   wms-simulator                 generated warehouse days into Kafka, and their verification
let package = Package(
    name: "wms-worker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "wms-worker", targets: ["WMSWorker"]),
        .executable(name: "wms-dev-broker", targets: ["WMSDevBroker"]),
        .executable(name: "wms-simulator", targets: ["WMSSimulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // hiredis's .pc file adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses with a
        // warning; its headers sit in /usr/include, so no pkg-config is needed.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        .target(name: "BlockingIO"),
        .target(name: "Kafka", dependencies: [
            "CRdKafka", "BlockingIO", .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Redis", dependencies: ["CHiredis", "BlockingIO"]),
        .target(name: "Postgres", dependencies: ["CLibPQ", "BlockingIO"]),

        // The schemas as files shipped beside the binary: PostgreSQL migrations (and,
        // with the pipeline, the JSON Schemas of every message).
        .target(name: "WMSSchemas", path: "Schemas", resources: [.copy("postgres"), .copy("json")]),
        // The domain, free of I/O: events, validation, canonical JSON, effects, alert rules.
        .target(name: "WMSDomain"),
        // The worker's PostgreSQL side: migrations now, the batch's set-based SQL later.
        .target(name: "WMSStore", dependencies: ["Postgres", "WMSSchemas", "WMSDomain"]),
        // The batch pipeline: decode, decide, Redis scripts, one PostgreSQL transaction,
        // display-cache invalidation, outbox publishing, offset commit.
        .target(name: "WMSPipeline", dependencies: [
            "WMSDomain", "WMSStore", "Kafka", "Redis", "Postgres",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        // Model/: the Promela model of the batch protocol (scripts/check-model), not Swift.
        exclude: ["Model"], resources: [.copy("Lua")]),
        // What operators run besides the daemon: settings from the environment, a file
        // and flags; moving the group's offsets for a replay; reconciling Redis with
        // PostgreSQL.
        .target(name: "WMSOperations", dependencies: [
            "WMSPipeline", "WMSStore", "WMSDomain", "Kafka", "Redis", "Postgres", "BlockingIO",
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The daemon as services under one lifecycle: the pipeline, HTTP health and
        // metrics, store probes; structured logs.
        .target(name: "WMSService", dependencies: [
            "WMSOperations", "WMSPipeline", "WMSStore", "Kafka", "Redis", "Postgres", "BlockingIO",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .executableTarget(name: "WMSWorker", dependencies: [
            "Kafka", "Redis", "Postgres", "BlockingIO", "WMSDomain", "WMSStore", "WMSPipeline", "WMSOperations", "WMSService",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "WMSDevBroker", dependencies: [
            "Kafka",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // What every test target shares: the local services' settings, running blocking code.
        .target(name: "TestSupport", dependencies: [
            "BlockingIO", "Postgres", "Redis", "Kafka", "WMSStore", "WMSDomain", "WMSPipeline",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/Support"),
        // What the simulator generates, free of I/O: a warehouse day with its
        // arithmetic, and hostile input with the outcome the contract gives each
        // class; the pipeline tests generate the same.
        .target(name: "WMSSimulation", dependencies: ["Kafka"]),
        .executableTarget(name: "WMSSimulator", dependencies: [
            "WMSSimulation", "Kafka", "Redis", "Postgres", "BlockingIO",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "BlockingIOTests", dependencies: ["BlockingIO"]),
        .testTarget(name: "KafkaTests", dependencies: [
            "Kafka", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "RedisTests", dependencies: ["Redis", "TestSupport"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(name: "WMSStoreTests", dependencies: ["WMSStore", "Postgres", "BlockingIO", "TestSupport"]),
        .testTarget(
            name: "WMSDomainTests", dependencies: ["WMSDomain", "TestSupport"], exclude: ["validate_samples.py"], resources: [.copy("Samples")]),
        .testTarget(name: "WMSPipelineTests", dependencies: [
            "WMSPipeline", "WMSDomain", "WMSStore", "WMSSimulation", "Kafka", "Redis", "Postgres", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "WMSOperationsTests", dependencies: [
            "WMSOperations", "WMSPipeline", "WMSStore", "Kafka", "Redis", "Postgres", "TestSupport",
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "WMSServiceTests", dependencies: [
            "WMSService", "WMSOperations", "Kafka", "Redis", "Postgres", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
