/// librdkafka properties by name. Any property librdkafka knows can be set (SASL,
/// TLS, tuning); the typed accessors cover what the worker sets itself.
public struct KafkaConfig: Sendable, CustomStringConvertible {
    public private(set) var properties: [String: String]

    public init(bootstrapServers: String, properties: [String: String] = [:]) {
        self.init(properties: properties)
        self.properties["bootstrap.servers"] = bootstrapServers
    }

    public init(properties: [String: String]) {
        self.properties = properties
    }

    public subscript(_ name: String) -> String? {
        get { properties[name] }
        set { properties[name] = newValue }
    }

    public var bootstrapServers: String {
        get { properties["bootstrap.servers"] ?? "" }
        set { properties["bootstrap.servers"] = newValue }
    }

    public var groupID: String? {
        get { properties["group.id"] }
        set { properties["group.id"] = newValue }
    }

    public var clientID: String? {
        get { properties["client.id"] }
        set { properties["client.id"] = newValue }
    }

    /// Properties whose values are secrets: masked wherever the configuration is shown.
    public static func isSecret(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return ["password", "secret", "jaas", "ssl.key.pem", "token"].contains { lowered.contains($0) }
    }

    /// The properties with secrets masked, sorted by name: safe to log.
    public var redacted: [(name: String, value: String)] {
        properties.sorted { $0.key < $1.key }.map { ($0.key, Self.isSecret($0.key) ? "***" : $0.value) }
    }

    public var description: String {
        redacted.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
    }

    /// Sets `name` only when the caller has not.
    mutating func setDefault(_ name: String, _ value: String) {
        if properties[name] == nil { properties[name] = value }
    }
}
