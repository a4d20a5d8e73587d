import Foundation
import Redis
import Testing
import TestSupport

@Suite struct RedisConnectionTests {
    let url = try! RedisURL(TestEnvironment.redisURL)

    @Test func binaryValuesRoundTripByteForByte() async throws {
        let url = self.url
        let (value, cutKeyExists) = try await blocking {
            let redis = try RedisConnection(url: url)
            let prefix = "wms:test:"
            let key = Array("\(prefix)\u{0}bin:\(UUID().uuidString)".utf8)
            let value: [UInt8] = [0, 1, 0, 255, 10, 13] + Array("größe ✓ 在庫 \r\n$-1\r\n".utf8) + [0]
            try redis.send("SET", key, value)
            let read = try redis.send("GET", key).bytes
            // A key cut at its NUL would have been written as the prefix alone.
            let cut = try redis.send("EXISTS", prefix).int
            try redis.send("DEL", key)
            return (read, cut)
        }
        #expect(value == [0, 1, 0, 255, 10, 13] + Array("größe ✓ 在庫 \r\n$-1\r\n".utf8) + [0])
        #expect(cutKeyExists == 0)
    }

    @Test func pipelineSendsManyCommandsAndKeepsEachReplyInPlace() async throws {
        let url = self.url
        let replies = try await blocking {
            let redis = try RedisConnection(url: url)
            let counter = "wms:test:counter:\(UUID().uuidString)"
            let text = "wms:test:text:\(UUID().uuidString)"
            try redis.send("SET", text, "not a number")
            var commands = (0..<500).map { _ in RedisCommand("INCR", counter) }
            commands.insert(RedisCommand("INCR", text), at: 250)
            let replies = try redis.pipeline(commands)
            try redis.send("DEL", counter, text)
            return replies
        }
        #expect(replies.count == 501)
        #expect(replies[0] == .integer(1))
        #expect(replies[249] == .integer(250))
        #expect(replies[250] == .error(RedisServerError(prefix: "ERR", message: "value is not an integer or out of range")))
        #expect(replies[251] == .integer(251))
        #expect(replies[500] == .integer(500))
    }

    @Test func serverErrorsAreSplitIntoPrefixAndMessage() async throws {
        let url = self.url
        let error = try await blocking { () -> RedisError? in
            let redis = try RedisConnection(url: url)
            let key = "wms:test:list:\(UUID().uuidString)"
            try redis.send("RPUSH", key, "a")
            defer { _ = try? redis.send("DEL", key) }
            do {
                try redis.send("INCR", key)
                return nil
            } catch {
                return error as? RedisError
            }
        }
        guard case .server(let server) = error else {
            Issue.record("expected a server error, got \(String(describing: error))")
            return
        }
        #expect(server.prefix == "WRONGTYPE")
        #expect(server.message.hasPrefix("Operation against a key holding the wrong kind of value"))
        #expect(error?.isRetriable == false)
    }

    @Test func scriptIsLoadedCalledAndReloadedAfterScriptFlush() async throws {
        let url = self.url
        let script = RedisScript(name: "add-to-hash", source: """
            local total = redis.call('HINCRBY', KEYS[1], 'onHand', tonumber(ARGV[1]))
            return {total, ARGV[2]}
            """)
        let results = try await blocking {
            let redis = try RedisConnection(url: url)
            let key = "inventory:test:{SKU-\(UUID().uuidString)}:FC1"
            defer { _ = try? redis.send("DEL", key) }
            let first = try redis.evaluate(script, keys: [key], arguments: [5, "tag\u{0}1"])
            try redis.send("SCRIPT", "FLUSH")
            // The cached SHA1 is now unknown to the server: NOSCRIPT, reload, call again.
            let second = try redis.evaluate(script, keys: [key], arguments: [7, "tag2"])
            try redis.send("SCRIPT", "FLUSH")
            let batch = try redis.evaluateAll((1...3).map { RedisScript.Call(script: script, keys: [key], arguments: [$0, "b\($0)"]) })
            return (first, second, batch, try redis.send("HGET", key, "onHand"))
        }
        #expect(results.0 == .array([.integer(5), .bulk(Array("tag\u{0}1".utf8))]))
        #expect(results.1 == .array([.integer(12), .bulk(Array("tag2".utf8))]))
        #expect(results.2.map { $0.array?.first?.int } == [13, 15, 18])
        #expect(results.3.int == 18)
    }

    @Test func wrongPasswordGivesAClearErrorWithoutThePassword() async throws {
        var wrongPassword = url
        wrongPassword.password = "s3cret-Not-The-Real-One"
        let wrong = wrongPassword
        let error = try await blocking { () -> RedisError? in
            do {
                _ = try RedisConnection(url: wrong)
                return nil
            } catch {
                return error as? RedisError
            }
        }
        let text = "\(String(describing: error)) \(wrong)"
        #expect(text.contains("WRONGPASS") || text.contains("invalid password"))
        #expect(!text.contains("s3cret-Not-The-Real-One"))
        #expect(error?.isRetriable == false)
    }

    @Test func serverDownGivesARetriableErrorQuickly() async throws {
        // Port 9 (discard) on loopback has no listener here: the connection is refused.
        let down = RedisURL(host: "127.0.0.1", port: 9)
        // Timed inside the thread: the connect alone, not the wait for a thread on a loaded machine (11 s once in CI).
        let (error, took) = try await blocking { () -> (RedisError?, Duration) in
            let start = ContinuousClock.now
            do {
                _ = try RedisConnection(url: down, connectTimeout: .seconds(1))
                return (nil, ContinuousClock.now - start)
            } catch {
                return (error as? RedisError, ContinuousClock.now - start)
            }
        }
        guard case .connection(let detail) = error else {
            Issue.record("expected a connection error, got \(String(describing: error))")
            return
        }
        #expect(detail.contains("refused"))
        #expect(error?.isRetriable == true)
        // Refused at once; the bound only catches a connect that waits for no timeout.
        #expect(took < .seconds(10))
    }

    @Test func reconnectsAfterTheServerDropsTheConnection() async throws {
        let url = self.url
        let outcome = try await blocking {
            let redis = try RedisConnection(url: url)
            let admin = try RedisConnection(url: url)
            let id = try redis.send("CLIENT", "ID").int!
            try admin.send("CLIENT", "KILL", "ID", id)
            var failure: RedisError?
            do { try redis.send("PING") } catch { failure = error as? RedisError }
            let afterwards = try redis.send("PING")
            let newID = try redis.send("CLIENT", "ID").int!
            return (failure, afterwards, newID != id)
        }
        #expect(outcome.0?.isRetriable == true)
        #expect(outcome.1 == .status("PONG"))
        #expect(outcome.2)
    }

    @Test func urlParsingAndRedaction() throws {
        let full = try RedisURL("redis://:pa%40ss@cache.internal:6380/3")
        #expect(full.host == "cache.internal")
        #expect(full.port == 6380)
        #expect(full.database == 3)
        #expect(full.password == "pa@ss")
        #expect(full.username == nil)
        #expect(full.description == "redis://:***@cache.internal:6380/3")
        let withUser = try RedisURL("redis://worker:pw@localhost")
        #expect(withUser.username == "worker")
        #expect(withUser.port == 6379)
        #expect(withUser.database == 0)

        let seeds = try RedisURL("redis://:pa%40ss@10.0.0.1:7000,10.0.0.2,node-3:7002/0")
        #expect(seeds.seeds == [RedisAddress(host: "10.0.0.1", port: 7000), RedisAddress(host: "10.0.0.2", port: 6379),
                                RedisAddress(host: "node-3", port: 7002)])
        #expect(seeds.password == "pa@ss")
        #expect(seeds.description == "redis://:***@10.0.0.1:7000,10.0.0.2:6379,node-3:7002/0")
        #expect(seeds.at(RedisAddress(host: "node-3", port: 7002)).description == "redis://:***@node-3:7002/0")

        for bad in ["http://localhost:6379", "redis://:topsecret@/0", "redis://:topsecret@host/notanumber", "redis://h:99999",
                    "redis://:topsecret@h1:7000,/0", "redis://:topsecret@h1:7000,h2:99999/0"] {
            #expect {
                _ = try RedisURL(bad)
            } throws: { error in
                let text = "\(error)"
                return text.contains("invalid Redis URL") && !text.contains("topsecret")
            }
        }
    }
}
