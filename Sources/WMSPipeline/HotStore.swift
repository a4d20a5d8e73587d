import Foundation
import Redis
import WMSDomain

/// One event's changes to one SKU: what one call of `apply_effects.lua` does.
struct SKUChange: Sendable {
    var eventId: String
    var digest: String
    var sku: String
    /// The locations touched, each with its summed deltas (one or two).
    var locations: [(locationId: String, deltas: Deltas)]
}

/// What a location looked like around a change, as the script saw it.
struct LocationChange: Sendable, Equatable {
    var onHandBefore: Int64
    var onHandAfter: Int64
    var availableBefore: Int64
    var availableAfter: Int64
}

enum SKUChangeOutcome: Sendable, Equatable {
    case applied([LocationChange])
    /// Applied before (a redelivery, or a replay after a crash): what it found then.
    case alreadyApplied([LocationChange])
    /// The mark holds another payload's digest.
    case conflict
}

/// The Redis side of a batch: the hot store's scripts, and the display cache.
final class HotStore {
    static let applyScript: RedisScript = {
        let url = Bundle.module.url(forResource: "apply_effects", withExtension: "lua", subdirectory: "Lua")!
        return try! RedisScript(contentsOf: url)
    }()

    let hot: RedisConnection
    let displayCache: RedisConnection
    let deduplicationWindowSeconds: Int64

    init(hot: RedisConnection, displayCache: RedisConnection, deduplicationWindow: Duration) {
        self.hot = hot
        self.displayCache = displayCache
        self.deduplicationWindowSeconds = max(1, deduplicationWindow.components.seconds)
    }

    /// Runs every change in one pipeline; the outcome of each, in order.
    func apply(_ changes: [SKUChange], nowMs: Int64) throws -> [SKUChangeOutcome] {
        guard !changes.isEmpty else { return [] }
        let calls = changes.map { change in
            RedisScript.Call(
                script: Self.applyScript,
                keys: [RedisKeys.applied(sku: change.sku, eventId: change.eventId)]
                    + change.locations.map { RedisKeys.live(sku: change.sku, location: $0.locationId) },
                arguments: [change.digest, nowMs, deduplicationWindowSeconds]
                    + change.locations.flatMap { $0.deltas.values.map { $0 as any RedisArgument } })
        }
        return try zip(hot.evaluateAll(calls), changes).map { reply, change in
            try Self.outcome(of: reply.get(), locations: change.locations.count)
        }
    }

    /// Deletes the display-cache entry of every SKU, in one round trip.
    func invalidateDisplay(skus: some Collection<String>) throws {
        guard !skus.isEmpty else { return }
        try displayCache.send(RedisCommand(["UNLINK"] + skus.map { RedisKeys.display(sku: $0) }))
    }

    static func outcome(of reply: RESPValue, locations: Int) throws(RedisError) -> SKUChangeOutcome {
        guard let parts = reply.array, parts.count == 2, let status = parts[0].string, let body = parts[1].string else {
            throw .unexpectedReply("apply_effects returned \(reply)")
        }
        switch status {
        case "conflict": return .conflict
        case "applied", "duplicate":
            let changes = body.split(separator: ",").map { location -> LocationChange? in
                let numbers = location.split(separator: ":").compactMap { Int64($0) }
                guard numbers.count == 4 else { return nil }
                return LocationChange(onHandBefore: numbers[0], onHandAfter: numbers[1], availableBefore: numbers[2], availableAfter: numbers[3])
            }
            guard changes.count == locations, !changes.contains(nil) else {
                throw .unexpectedReply("apply_effects result '\(body)' for \(locations) location(s)")
            }
            return status == "applied" ? .applied(changes.map { $0! }) : .alreadyApplied(changes.map { $0! })
        default:
            throw .unexpectedReply("apply_effects status '\(status)'")
        }
    }
}
