import Foundation

/// A Lua script run with EVALSHA. Its name identifies it in errors and caches.
public struct RedisScript: Sendable, Hashable {
    public let name: String
    public let source: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    /// Reads a script from a `.lua` file; the file's base name is the script's name.
    public init(contentsOf url: URL) throws {
        self.init(name: url.deletingPathExtension().lastPathComponent, source: try String(contentsOf: url, encoding: .utf8))
    }

    /// One invocation: the keys it touches (what Redis Cluster routing needs) and its arguments.
    public struct Call: Sendable {
        public var script: RedisScript
        public var keys: [any RedisArgument]
        public var arguments: [any RedisArgument]

        public init(script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) {
            self.script = script
            self.keys = keys
            self.arguments = arguments
        }

        func command(sha: String) -> RedisCommand {
            RedisCommand(["EVALSHA", sha, keys.count] + keys + arguments)
        }
    }
}
