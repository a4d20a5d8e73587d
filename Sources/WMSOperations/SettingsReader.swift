import Configuration
import Foundation
import Kafka
import Synchronization

/// Where a setting's value came from.
public enum SettingSource: String, Sendable, Codable {
    case flag, file, environment, `default`
}

/// The three layers a setting can come from, each overriding the one before.
public struct SettingLayers: Sendable {
    public var environment: [String: String]
    /// Values of the flags given on the command line.
    public var flags: [SettingDefinition: String]
    /// librdkafka properties from repeated `--kafka-property name=value`, merged over
    /// those of the environment and the file property by property.
    public var kafkaPropertyFlags: [String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment,
                flags: [SettingDefinition: String] = [:], kafkaPropertyFlags: [String] = []) {
        self.environment = environment
        self.flags = flags
        self.kafkaPropertyFlags = kafkaPropertyFlags
    }
}

/// A setting that is missing or malformed, named as the operator wrote it.
public struct InvalidSetting: Error, CustomStringConvertible {
    public let setting: SettingDefinition
    public let source: SettingSource?
    public let problem: String

    public init(setting: SettingDefinition, source: SettingSource?, problem: String) {
        self.setting = setting
        self.source = source
        self.problem = problem
    }

    public var description: String {
        let origin = switch source {
        case .flag: " (flag \(setting.flag))"
        case .file: " (in the settings file)"
        case .environment, .default, nil: ""
        }
        return "setting \(setting.environmentName)\(origin): \(problem)"
    }
}

/// Reads settings through swift-configuration: flags first, then the settings file,
/// then the environment. Records which layer answered each setting.
struct SettingsReader {
    private let reader: ConfigReader
    private let answered: AnsweringLayers
    private let layerSources: [SettingSource]
    private let propertyLayers: [(SettingSource, ConfigReader)]
    private let kafkaPropertyFlags: [String]

    init(_ layers: SettingLayers) throws {
        let secrets = Set(SettingDefinition.all.filter(\.isSecret).map(\.environmentName))
        let environment = EnvironmentVariablesProvider(environmentVariables: layers.environment, secretsSpecifier: .specific(secrets))
        var flagValues: [AbsoluteConfigKey: ConfigValue] = [:]
        for (definition, value) in layers.flags {
            flagValues[AbsoluteConfigKey(stringLiteral: definition.configurationKey)] = ConfigValue(.string(value), isSecret: definition.isSecret)
        }
        let flags = InMemoryProvider(name: "flags", values: flagValues)

        // The file's path is itself a setting, of the environment or a flag.
        let path = layers.flags[.configFile] ?? layers.environment[SettingDefinition.configFile.environmentName].flatMap { $0.isEmpty ? nil : $0 }
        var providers: [any ConfigProvider] = [flags]
        var sources: [SettingSource] = [.flag]
        var propertyLayers: [(SettingSource, ConfigReader)] = [(.environment, ConfigReader(provider: environment))]
        if let path {
            let source: SettingSource = layers.flags[.configFile] != nil ? .flag : .environment
            let file = EnvironmentVariablesProvider(environmentVariables: try Self.readFile(path, source: source), secretsSpecifier: .specific(secrets))
            providers.append(file)
            sources.append(.file)
            propertyLayers.append((.file, ConfigReader(provider: file)))
        }
        providers.append(environment)
        sources.append(.environment)
        propertyLayers.append((.flag, ConfigReader(provider: flags)))

        answered = AnsweringLayers()
        reader = ConfigReader(providers: providers, accessReporter: answered)
        layerSources = sources
        self.propertyLayers = propertyLayers
        kafkaPropertyFlags = layers.kafkaPropertyFlags
    }

    /// The value, or nil when no layer sets it (an empty value counts as unset).
    func string(_ definition: SettingDefinition) -> String? {
        let value = reader.string(forKey: ConfigKey(definition.configurationKey), isSecret: definition.isSecret)?
            .trimmingCharacters(in: .whitespaces)
        return value?.isEmpty == false ? value : nil
    }

    func required(_ definition: SettingDefinition) throws -> String {
        guard let value = string(definition) else { throw missing(definition) }
        return value
    }

    func missing(_ definition: SettingDefinition) -> InvalidSetting {
        InvalidSetting(setting: definition, source: nil,
                       problem: "is not set (set \(definition.environmentName), a line in the settings file, or \(definition.flag))")
    }

    /// The value made into `Value` by `parse`, or nil when unset. A parse error is
    /// reported against the setting and the layer the value came from.
    func parsed<Value>(_ definition: SettingDefinition, _ parse: (String) throws -> Value) throws -> Value? {
        guard let text = string(definition) else { return nil }
        do {
            return try parse(text)
        } catch {
            throw InvalidSetting(setting: definition, source: source(of: definition), problem: "\(error)")
        }
    }

    /// `name=value;…` librdkafka properties, merged property by property over the
    /// layers: environment, then file, then flags (`--kafka-property` for the
    /// all-clients setting).
    func properties(_ definition: SettingDefinition) throws -> [String: String] {
        var merged: [String: String] = [:]
        for (source, layer) in propertyLayers {
            guard let text = layer.string(forKey: ConfigKey(definition.configurationKey), isSecret: true), !text.isEmpty else { continue }
            merged.merge(try Self.parseProperties(text, definition: definition, source: source)) { $1 }
        }
        if definition == .kafkaProperties {
            for pair in kafkaPropertyFlags {
                merged.merge(try Self.parseProperties(pair, definition: definition, source: .flag)) { $1 }
            }
        }
        return merged
    }

    var sources: [SettingDefinition: SettingSource] {
        Dictionary(uniqueKeysWithValues: SettingDefinition.all.map { ($0, source(of: $0)) })
    }

    private func source(of definition: SettingDefinition) -> SettingSource {
        if definition == .kafkaProperties, !kafkaPropertyFlags.isEmpty { return .flag }
        if definition == .kafkaProperties || definition == .consumerProperties {
            // Merged over the layers: the highest that sets any property.
            return propertyLayers.last { _, layer in
                layer.string(forKey: ConfigKey(definition.configurationKey), isSecret: true)?.isEmpty == false
            }?.0 ?? .default
        }
        guard let index = answered.layer(of: definition.configurationKey) else { return .default }
        return layerSources[index]
    }

    /// Properties the worker's guarantees rest on: offsets stored and committed by
    /// the worker only after effects are durable, an idempotent producer, the
    /// group named by its own setting.
    static let reservedProperties = [
        "group.id": "set WMS_KAFKA_GROUP_ID instead",
        "enable.auto.commit": "the worker commits offsets itself, after each batch's effects are durable",
        "enable.auto.offset.store": "the worker stores offsets itself, after each batch's effects are durable",
        "enable.idempotence": "the worker's producer must be idempotent",
    ]

    /// `name=value` entries separated by `;` or newlines; `\;` is a `;` inside a
    /// value. A malformed entry is named by its position only: it may hold a secret.
    static func parseProperties(_ text: String, definition: SettingDefinition, source: SettingSource) throws -> [String: String] {
        var entries: [String] = [""]
        var escaped = false
        for character in text {
            if escaped {
                entries[entries.count - 1].append(character == ";" ? ";" : "\\\(character)")
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ";" || character.isNewline {
                entries.append("")
            } else {
                entries[entries.count - 1].append(character)
            }
        }
        if escaped { entries[entries.count - 1].append("\\") }
        var properties: [String: String] = [:]
        for (index, entry) in entries.enumerated() {
            let pair = entry.trimmingCharacters(in: .whitespaces)
            guard !pair.isEmpty else { continue }
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw InvalidSetting(setting: definition, source: source, problem: """
                    entry \(index + 1) is not of the form name=value (write a ';' inside a value as '\\;')
                    """)
            }
            let name = String(pair[..<equals]).trimmingCharacters(in: .whitespaces)
            if let reason = reservedProperties[name] {
                throw InvalidSetting(setting: definition, source: source, problem: "\(name) cannot be passed through: \(reason)")
            }
            properties[name] = String(pair[pair.index(after: equals)...])
        }
        return properties
    }

    /// The settings file: `NAME=value` lines with the environment's names, `#`
    /// comments. An unknown name is an error, not a silent typo.
    static func readFile(_ path: String, source: SettingSource) throws -> [String: String] {
        let fail = { (problem: String) in InvalidSetting(setting: .configFile, source: source, problem: problem) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw fail("cannot read '\(path)' (missing or not readable)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw fail("'\(path)' is not UTF-8 text") }
        let known = Set(SettingDefinition.all.filter { $0 != .configFile }.map(\.environmentName))
        var values: [String: String] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw fail("\(path):\(number + 1): expected NAME=value")
            }
            let name = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            guard known.contains(name) else {
                throw fail("\(path):\(number + 1): unknown setting '\(name.prefix(64))'")
            }
            var value = String(trimmed[trimmed.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
            // Quoted as systemd's EnvironmentFile allows: the quotes are not part of it.
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            values[name] = value
        }
        return values
    }
}

/// Records, per key, which provider of the reader answered (its index in the
/// provider list: swift-configuration asks them in order and stops at the first).
final class AnsweringLayers: AccessReporter, Sendable {
    private let layers = Mutex<[String: Int]>([:])

    func report(_ event: AccessEvent) {
        guard case .success(let value?) = event.result, case .string(let text) = value.content, !text.isEmpty else { return }
        let key = event.metadata.key.components.joined(separator: ".")
        layers.withLock { $0[key] = event.providerResults.count - 1 }
    }

    func layer(of key: String) -> Int? { layers.withLock { $0[key] } }
}
