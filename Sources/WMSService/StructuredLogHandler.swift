import Foundation
import Logging
import Synchronization
import WMSOperations

/// One line per log record on standard error, as logfmt or JSON: time, level,
/// message, then the metadata (consumer group, topic, partition, offsets, error).
/// Values reach it already masked: the worker never logs a secret.
public struct StructuredLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Settings.LogFormat

    /// One lock for every handler, so concurrent lines never interleave.
    private static let output = Mutex<Void>(())

    public init(label: String, format: Settings.LogFormat, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    /// Makes every logger of the process structured.
    public static func bootstrap(format: Settings.LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in StructuredLogHandler(label: label, format: format, level: level) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        var pairs: [(String, String)] = [("time", time), ("level", event.level.rawValue), ("msg", "\(event.message)"), ("logger", label)]
        if event.source != label, !event.source.isEmpty { pairs.append(("source", event.source)) }
        pairs += fields.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
        let line = switch format {
        case .logfmt: pairs.map { "\($0.0)=\(Self.logfmtValue($0.1))" }.joined(separator: " ")
        case .json: "{" + pairs.map { "\(Self.jsonString($0.0)):\(Self.jsonString($0.1))" }.joined(separator: ",") + "}"
        }
        Self.output.withLock { _ in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Bare when it can be, else quoted with `"` and `\` escaped; newlines escaped
    /// so one record stays one line.
    static func logfmtValue(_ value: String) -> String {
        let bare = !value.isEmpty && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "=" && $0 != "\"" && $0.value != 0x7F }
        return bare ? value : "\"" + escaped(value) + "\""
    }

    static func jsonString(_ value: String) -> String { "\"" + escaped(value) + "\"" }

    private static func escaped(_ value: String) -> String {
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
