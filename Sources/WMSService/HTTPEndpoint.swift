import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import WMSOperations
import WMSPipeline

/// `/healthz` (the process answers), `/readyz` (200 when ready, 503 and the
/// failing checks otherwise, as JSON) and `/metrics` (Prometheus text format).
public enum HTTPEndpoint {
    /// The endpoint as a service; a server that cannot listen stops the worker with
    /// an error naming the setting.
    public static func service(address: HTTPAddress, readiness: Readiness, registry: PrometheusCollectorRegistry,
                               logger: Logger) -> some Service {
        ListeningService(address: address, application: application(address: address, readiness: readiness, registry: registry, logger: logger))
    }

    struct ListeningService<App: ApplicationProtocol>: Service {
        let address: HTTPAddress
        let application: App

        func run() async throws {
            do {
                try await application.run()
            } catch let error where !(error is CancellationError) {
                throw InvalidSetting(setting: .httpAddress, source: nil, problem: "the HTTP endpoint cannot serve on \(address): \(error)")
            }
        }
    }

    static func application(address: HTTPAddress, readiness: Readiness, registry: PrometheusCollectorRegistry,
                            logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("readyz") { _, _ in
            let report = readiness.report()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = (try? encoder.encode(report)) ?? Data("{}".utf8)
            return Response(status: report.ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: body + Data("\n".utf8))))
        }
        router.get("metrics") { _, _ in
            _ = readiness.report() // refreshes wms_ready for this scrape
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: WorkerMetric.withHelp(buffer))))
        }
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning) // no line per request
        return Application(
            router: router,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "wms-worker"),
            onServerRunning: { channel in
                // The port actually bound: with port 0 the system picks one.
                let port = channel.localAddress?.port ?? address.port
                logger.notice("HTTP listening", metadata: ["http.address": "\(HTTPAddress(host: address.host, port: port))"])
            },
            logger: quiet)
    }
}
