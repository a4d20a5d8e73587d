import Foundation
import Kafka
import Logging
import WMSDomain
import WMSStore

/// What became of a batch's messages: for logs and metrics.
public struct BatchReport: Sendable {
    public var applied: [EventType: Int] = [:]
    /// Events already applied (a redelivery, a resend, a replay).
    public var duplicated: [EventType: Int] = [:]
    public var deadLetters: [BadEventCode: Int] = [:]
    public var alerts: [String: Int] = [:]
    /// Order line decisions: reservation, available, backordered, cancelled (at
    /// confirmation), filled, and cancelled lines.
    public var decisions: [String: Int] = [:]
    public var published = 0
    public var batches = 0
    public var messages = 0
    /// Time spent in each step, summed over the batches.
    public var stepTime: [String: Duration] = [:]

    public var appliedCount: Int { applied.values.reduce(0, +) }
    public var duplicates: Int { duplicated.values.reduce(0, +) }
    public var deadLetterCount: Int { deadLetters.values.reduce(0, +) }
}

/// Times a batch's steps into its report: each lap adds the time since the last
/// one to the step named.
struct StepClock {
    private var last = ContinuousClock.now

    mutating func lap(_ step: String, _ report: inout BatchReport) {
        let now = ContinuousClock.now
        report.stepTime[step, default: .zero] += now - last
        last = now
    }
}

/// A batch whose Redis scripts have run: what the commit lane needs to make it
/// durable (`BatchFinisher`), and what a batch prepared meanwhile must know of it.
struct PreparedBatch: Sendable {
    var messages: [KafkaMessage]
    var started: ContinuousClock.Instant
    var report: BatchReport
    var records: BatchRecords
    /// Every SKU whose display-cache entry goes, this batch's and its duplicates'.
    var displaySKUs: Set<String>
    /// What the release after the commit lets expire (see `HotStore.release`).
    var releases: [(change: SKUChange, fills: [SKUResult.Filled]?)]
    var eventKeys: Set<String>
    /// Events found applied, whose outbox rows a crashed run may have left.
    var duplicateIDs: [String]
    /// The token of the Redis state its scripts ran on: its transaction checks it still stands.
    var redisState: String
    /// How far its Redis writes reached on each primary: its transaction records it.
    var replication: RedisReplicationPositions?
    /// Late cancellations whose keys its release lets expire: no longer owed after it.
    var lateReleases: [PendingCancellation] = []

    /// What the batch changes in PostgreSQL that the next one may read.
    var inFlight: InFlight {
        InFlight(digests: Dictionary(records.events.map { ($0.eventId, $0.digest) }, uniquingKeysWith: { first, _ in first }),
                 orderLines: records.confirmedLines.map { .confirmed($0.orderId, $0.storedLine) }
                    + records.filledLines.map { .filled($0.orderId, $0.storedLine) }
                    + records.cancelledLines.map { .cancelled($0.orderId, lineId: $0.lineId) }
                    + records.lateCancellations.map { .cancelled($0.pending.orderId, lineId: $0.pending.line.lineId) },
                 orderCancellations: records.orderCancellations.map { ($0.orderId, $0.lineId) },
                 touchesPendingCancellations: !records.lateCancellations.isEmpty || !records.releasedBeforeAllocation.isEmpty)
    }
}

/// What a batch still being written (on the commit lane) means for the next one,
/// prepared meanwhile: its events count as applied, and what it writes of orders
/// is laid over what PostgreSQL answers (which may be from before its commit or
/// after, so each change is one that applying twice leaves as applying once).
/// Its pending cancellations are read only after its commit. Everything else the
/// next batch needs, Redis already holds: claims, marks, lines and tallies stay
/// until the release that follows the commit.
struct InFlight: Sendable {
    /// eventId and digest of every event the batch applies.
    var digests: [String: String] = [:]
    /// What the batch writes of order lines, in the order its transaction does.
    var orderLines: [OrderLineChange] = []
    /// The cancellations it records (orderId, lineId or `*`).
    var orderCancellations: [(orderId: String, lineId: String)] = []
    /// It releases or holds pending cancellations.
    var touchesPendingCancellations = false

    /// A write of `InventoryStore.write` to `allocations`, as the next batch reads it.
    enum OrderLineChange: Sendable {
        /// A new line: inserted unless it is there.
        case confirmed(String, StoredOrderLine)
        /// Filled from its queue: a backordered line becomes allocated; one not
        /// there yet (its confirmation still to come) is inserted allocated.
        case filled(String, StoredOrderLine)
        /// Given back or dropped: a line that is there and not cancelled becomes cancelled.
        case cancelled(String, lineId: String)
    }
}

/// Takes a batch through the steps of the contract (section 4) up to its Redis
/// scripts, on the pipeline thread: decode, find what PostgreSQL already holds,
/// claim, plan, run the scripts, and turn their answers into the records to
/// write and the messages to send. `BatchFinisher` does the rest on the commit
/// lane while the next batch is prepared here. Each step is idempotent, so a
/// batch that failed half way (or a process killed half way) is simply run again.
///
/// Blocking: runs on the pipeline's dedicated thread.
final class BatchPreparer {
    let settings: PipelineSettings
    let hotStore: HotStore
    /// Whether the primaries still hold what committed batches wrote (on the same connections).
    let redisState: RedisStateGuard
    let store: InventoryStore
    let faults: FaultPoints
    let logger: Logger
    let now: @Sendable () -> Int64
    /// Whether a run may have left late releases owed: at the start, and after a
    /// failed batch (idle batches look anyway: another worker may have).
    var releaseOwed = true

    init(settings: PipelineSettings, hotStore: HotStore, redisState: RedisStateGuard, store: InventoryStore, faults: FaultPoints,
         logger: Logger, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.settings = settings
        self.hotStore = hotStore
        self.redisState = redisState
        self.store = store
        self.faults = faults
        self.logger = logger
        self.now = now
    }

    /// What the batch decided for each message.
    enum Disposition {
        case apply(DecodedEvent)
        case alreadyApplied(DecodedEvent)
        case deadLetter(BadEvent)
    }

    /// `inFlight`: the batch the commit lane is writing, if any; `waitForInFlight`
    /// waits for its PostgreSQL commit (and throws if it failed), for when this
    /// batch reads what it writes.
    func prepare(_ messages: [KafkaMessage], inFlight: InFlight?, waitForInFlight: () throws -> Void) throws -> PreparedBatch {
        let started = ContinuousClock.now
        var report = BatchReport()
        report.batches = 1
        report.messages = messages.count
        var clock = StepClock()
        var inFlight = inFlight ?? InFlight()
        func settle() throws {
            try waitForInFlight()
            inFlight = InFlight()
            clock.lap("wait", &report)
        }
        let decoded = messages.map { EventDecoder.decode($0.value) }
        clock.lap("decode", &report)
        let candidateIDs = Array(Set(decoded.compactMap { try? $0.get().event.eventId }))
        let stored = try store.existingDigests(of: candidateIDs)
        clock.lap("lookup", &report)
        faults.reached(.afterLookup, idle: messages.isEmpty)

        // Every eventId PostgreSQL does not hold is claimed in Redis for a payload
        // before anything is applied: conflicting payloads touching different SKUs,
        // or a resend after a crash, cannot both land. Of those it holds, the ones
        // whose keys a crash left unreleased are found. Those of the batch in
        // flight are its to claim and release.
        var claims: [(eventId: String, digest: String)] = []
        var known: [String] = []
        for case .success(let event) in decoded {
            let id = event.event.eventId
            if stored[id] != nil { known.append(id) } else if inFlight.digests[id] == nil { claims.append((id, event.digest)) }
        }
        let standing = try hotStore.claim(claims, known: Array(Set(known)))
        try redisState.verify(standing.replication, settle: settle)
        clock.lap("claim", &report)
        var dispositions = Self.plan(decoded, stored: stored.merging(inFlight.digests) { stored, _ in stored }, standing: standing.standing)
        let (orderIds, cancelledOrders) = Self.orders(dispositions)
        let orders = try orderContext(orderIds, cancelled: cancelledOrders).overlaying(inFlight, orders: orderIds)
        Self.rejectChangedLines(&dispositions, orders: orders)
        let unreleased = dispositions.compactMap { disposition -> DecodedEvent? in
            guard case .alreadyApplied(let decoded) = disposition, standing.unreleased.contains(decoded.event.eventId) else { return nil }
            return decoded
        }
        // Order lines are claimed in PostgreSQL before any is decided in Redis: a
        // confirmation that another worker gave another content loses, now or later.
        let changedElsewhere = try store.claimOrderLines(dispositions.flatMap { disposition -> [(eventId: String, orderId: String, line: OrderLine)] in
            guard case .apply(let decoded) = disposition, case .orderConfirmed(let orderId, let lines) = decoded.event.body else { return [] }
            return lines.map { (decoded.event.eventId, orderId, $0) }
        })
        for (index, disposition) in dispositions.enumerated() {
            guard case .apply(let decoded) = disposition, changedElsewhere.contains(decoded.event.eventId) else { continue }
            dispositions[index] = .deadLetter(.changedOrderLine(eventId: decoded.event.eventId, detail: "as claimed by another event"))
        }
        let cancelledLines = try hotStore.claimLines(cancellations: Self.resolveCancellations(dispositions, orders: orders),
                                                 recall: unreleased.filter { $0.event.type == .orderCancelled }.map(\.event.eventId))
        let nowMs = now()
        var (changes, owners) = Self.skuChanges(dispositions, orders: orders, cancelledLines: cancelledLines)
        if try refuseWhole(&dispositions, changes: changes, owners: owners, nowMs: nowMs) {
            (changes, owners) = Self.skuChanges(dispositions, orders: orders, cancelledLines: cancelledLines)
        }
        let outcomes = try hotStore.apply(changes, nowMs: nowMs)
        clock.lap("redis", &report)
        faults.reached(.afterRedis, idle: messages.isEmpty)

        var records = buildRecords(messages, &dispositions, changes: changes, owners: owners, outcomes: outcomes, orders: orders,
                                   nowMs: nowMs, report: &report)
        if inFlight.touchesPendingCancellations { try settle() }
        let lateChanges = try releasePendingCancellations(into: &records, nowMs: nowMs, report: &report)
        // Releases a run left owed (it died or failed between a late cancellation's
        // commit and its release): done with this batch's, after its commit.
        let owed = releaseOwed || messages.isEmpty ? try store.owedLateReleases(limit: 100) : []
        releaseOwed = false
        clock.lap("records", &report)

        // PostgreSQL will answer for what the batch wrote in Redis: after the
        // commit it may go, after the grace. So may what a crash past an earlier
        // commit left; and so may every claim standing for this batch's payload,
        // whether this run made it or a run before it that died.
        let recalled = Self.skuChanges(unreleased.map { .apply($0) }, orders: OrderContext(), cancelledLines: cancelledLines,
                                       everyLine: true).changes
        let held = decoded.compactMap { try? $0.get() }.filter { standing.standing[$0.event.eventId] == $0.digest }
        let releases = zip(changes, outcomes).compactMap { change, outcome in outcome.result.map { (change, Optional($0.fills)) } }
            + lateChanges.map { ($0, Optional([SKUResult.Filled]())) } + recalled.map { ($0, nil) }
            + owed.map { (Self.lateChange($0, picks: PickHistory()), nil) }
        let duplicates = dispositions.compactMap { disposition -> DecodedEvent? in
            if case .alreadyApplied(let decoded) = disposition { decoded } else { nil }
        }
        // Events applied before count too: a run that died after its scripts may
        // not have invalidated their SKUs.
        let displaySKUs = Set(changes.map(\.sku) + lateChanges.map(\.sku) + duplicates.flatMap { $0.event.skus(orders: orders.lines) })
        let replication = try redisState.positions(after: standing.replication, settle: settle)
        return PreparedBatch(messages: messages, started: started, report: report, records: records, displaySKUs: displaySKUs,
                             releases: releases, eventKeys: Set((held + unreleased).flatMap(Self.claimKeys)),
                             duplicateIDs: duplicates.map(\.event.eventId), redisState: hotStore.expectedState.token,
                             replication: replication,
                             lateReleases: (records.lateCancellations + records.releasedBeforeAllocation).map(\.pending)
                                 .filter { $0.releasedInRedis == nil } + owed)
    }

    /// An event of several SKUs is checked whole before any SKU of it is applied:
    /// one that cannot be applied to some SKU is a dead letter, applied to none.
    /// (An event of one SKU needs no check: its script refuses before writing.)
    /// Whether any was refused.
    private func refuseWhole(_ dispositions: inout [Disposition], changes: [SKUChange], owners: [Int], nowMs: Int64) throws -> Bool {
        var changesPerEvent: [Int: Int] = [:]
        for owner in owners { changesPerEvent[owner, default: 0] += 1 }
        let checked = changes.indices.filter { changesPerEvent[owners[$0]]! > 1 }
        var refused = false
        for (position, why) in zip(checked, try hotStore.refusals(checked.map { changes[$0] }, nowMs: nowMs)) {
            guard let why, case .apply(let decoded) = dispositions[owners[position]] else { continue }
            dispositions[owners[position]] = .deadLetter(.unappliable(eventId: decoded.event.eventId, sku: changes[position].sku, why: why))
            refused = true
        }
        return refused
    }

    /// The claims an event holds: its eventId, and a cancellation's resolved lines.
    static func claimKeys(_ decoded: DecodedEvent) -> [String] {
        let id = decoded.event.eventId
        return decoded.event.type == .orderCancelled ? [RedisKeys.claim(eventId: id), RedisKeys.cancelledLines(eventId: id)] : [RedisKeys.claim(eventId: id)]
    }

    // MARK: Steps

    /// Decides per message, in offset order: a bad message is a dead letter; an
    /// eventId PostgreSQL (or an earlier message of this batch) holds with the same
    /// digest is a duplicate, with another digest a conflict, as is a payload other
    /// than the one standing in Redis's claim; the rest is applied.
    static func plan(_ decoded: [Result<DecodedEvent, BadEvent>], stored: [String: String], standing: [String: String]) -> [Disposition] {
        var seen = stored
        return decoded.map { result in
            switch result {
            case .failure(let bad):
                return .deadLetter(bad)
            case .success(let event):
                let id = event.event.eventId
                if let digest = seen[id] {
                    return digest == event.digest ? .alreadyApplied(event) : .deadLetter(.conflict(eventId: id))
                }
                if let claimed = standing[id], claimed != event.digest {
                    return .deadLetter(.conflict(eventId: id))
                }
                seen[id] = event.digest
                return .apply(event)
            }
        }
    }

    /// Releases lines found allocated or waiting under a cancellation (by
    /// `InventoryStore`, when a confirmation and a cancellation of one order each
    /// missed the other: two workers side by side, or a confirmation replayed after
    /// a crash returning the decision it made before the cancellation).
    /// Each gets a script call with a mark of its own, so a retry does not release
    /// twice; the records delete the pending row in the batch's transaction.
    /// Returns the changes, for their release after the commit.
    private func releasePendingCancellations(into records: inout BatchRecords, nowMs: Int64, report: inout BatchReport) throws -> [SKUChange] {
        func record(_ item: PendingCancellation, _ release: LineRelease) {
            records.lateCancellations.append(LateCancellationRecord(pending: item, released: release.released, picksUsed: release.picksUsed))
            report.decisions["cancelled late", default: 0] += 1
            logger.warning("order line cancelled late: its confirmation and its cancellation ran side by side", metadata: [
                "order_id": "\(item.orderId)", "line_id": "\(item.line.lineId)", "released": "\(release.released)",
            ])
            guard release.released > 0 else { return }
            records.outbox.append(OutboundMessages.allocation(
                .cancelled, orderId: item.orderId, locationId: item.line.locationId,
                lines: [.init(lineId: item.line.lineId, sku: item.line.sku, quantity: release.released)],
                causedBy: item.cancelEventId, atMs: nowMs, topic: settings.allocationsTopic,
                messageId: DerivedID.lateAllocationCancelled(cancelEventId: item.cancelEventId, orderId: item.orderId, lineId: item.line.lineId)))
        }
        let all = try store.pendingCancellations(limit: 100)
        // Lines the cancellation's scripts already released in Redis: PostgreSQL only.
        for item in all {
            guard let release = item.releasedInRedis else { continue }
            record(item, release)
        }
        let pending = all.filter { $0.releasedInRedis == nil }
        guard !pending.isEmpty else { return [] }
        let picks = try store.pickHistories(of: Array(Set(pending.map(\.orderId))))
        let changes = pending.map { item in
            Self.lateChange(item, picks: picks[InventoryStore.PickPlace(orderId: item.orderId, sku: item.line.sku,
                                                                         locationId: item.line.locationId)] ?? PickHistory())
        }
        var refused: [(item: PendingCancellation, why: String)] = []
        for (item, outcome) in zip(pending, try hotStore.apply(changes, nowMs: nowMs)) {
            if case .refused(let why) = outcome { refused.append((item, why)) }
            guard let result = outcome.result else { continue }
            let release = LineRelease(released: result.cancels.first?.released ?? 0, picksUsed: result.cancels.first?.picksUsed ?? 0)
            // Redis gave back a fill PostgreSQL does not hold yet (`item` has the
            // line as PostgreSQL holds it now): recorded once it does.
            if let cancelled = result.cancels.first, !Self.holdsAsRedisReleased(cancelled, stored: [item.line], records: records) {
                var held = item
                held.line.status = cancelled.was
                records.releasedBeforeAllocation.append(LateCancellationRecord(pending: held, released: release.released,
                                                                               picksUsed: release.picksUsed))
                continue
            }
            record(item, release)
        }
        // Behind the others, so that lines Redis refuses never hold back the rest.
        if let first = refused.first {
            logger.error("late cancellations refused by Redis, kept pending", metadata: [
                "count": "\(refused.count)", "order_id": "\(first.item.orderId)", "line_id": "\(first.item.line.lineId)",
                "reason": "\(first.why)",
            ])
            try store.postponeCancellations(refused.map(\.item))
        }
        return changes
    }

    /// The script call that releases a pending line in Redis (its keys: the mark
    /// of the release, the line, the pick tally).
    static func lateChange(_ item: PendingCancellation, picks: PickHistory) -> SKUChange {
        var change = SKUChange(eventId: DerivedID.lateCancellationToken(cancelEventId: item.cancelEventId, orderId: item.orderId,
                                                                        lineId: item.line.lineId),
                               digest: "late-cancel", sku: item.line.sku)
        change.cancels.append(SKUChange.Cancel(location: change.location(item.line.locationId), orderId: item.orderId,
                                               lineId: item.line.lineId, known: (item.line.status, item.line.quantity), picks: picks))
        return change
    }

    /// What PostgreSQL knows of the orders of the batch's order events.
    struct OrderContext {
        var lines: [String: [StoredOrderLine]] = [:]
        var cancelled: [String: Set<String>] = [:]
        /// Picks of the orders cancellations name, for tallies Redis no longer holds.
        /// (A batch in flight needs no overlay here: its tallies are held in Redis.)
        var picks: [InventoryStore.PickPlace: PickHistory] = [:]

        /// As PostgreSQL will answer once `inFlight` has committed, of these orders.
        func overlaying(_ inFlight: InFlight, orders: Set<String>) -> OrderContext {
            var context = self
            func position(_ orderId: String, _ lineId: String) -> Int? { context.lines[orderId]?.firstIndex { $0.lineId == lineId } }
            for change in inFlight.orderLines {
                switch change {
                case .confirmed(let orderId, let line) where orders.contains(orderId):
                    if position(orderId, line.lineId) == nil { context.lines[orderId, default: []].append(line) }
                case .filled(let orderId, let line) where orders.contains(orderId):
                    guard let index = position(orderId, line.lineId) else {
                        context.lines[orderId, default: []].append(line)
                        continue
                    }
                    if context.lines[orderId]![index].status == "backordered" { context.lines[orderId]![index].status = "allocated" }
                case .cancelled(let orderId, let lineId) where orders.contains(orderId):
                    if let index = position(orderId, lineId) { context.lines[orderId]![index].status = "cancelled" }
                default:
                    break
                }
            }
            for (orderId, lineId) in inFlight.orderCancellations where orders.contains(orderId) {
                context.cancelled[orderId, default: []].insert(lineId)
            }
            return context
        }
    }

    /// The orders of the events to apply, and of duplicate cancellations, whose
    /// SKUs (their order's) are invalidated in the display cache; and of those,
    /// the orders cancellations name (whose picks they count).
    static func orders(_ dispositions: [Disposition]) -> (all: Set<String>, cancelled: Set<String>) {
        var orderIds: Set<String> = []
        var cancelledOrders: Set<String> = []
        for disposition in dispositions {
            switch disposition {
            case .apply(let decoded):
                switch decoded.event.body {
                case .orderConfirmed(let orderId, _): orderIds.insert(orderId)
                case .orderCancelled(let orderId, _):
                    orderIds.insert(orderId)
                    cancelledOrders.insert(orderId)
                default: break
                }
            case .alreadyApplied(let decoded):
                if case .orderCancelled(let orderId, _) = decoded.event.body { orderIds.insert(orderId) }
            case .deadLetter:
                break
            }
        }
        return (orderIds, cancelledOrders)
    }

    /// What PostgreSQL knows of these orders.
    private func orderContext(_ orderIds: Set<String>, cancelled: Set<String>) throws -> OrderContext {
        guard !orderIds.isEmpty else { return OrderContext() }
        return OrderContext(lines: try store.orderLines(of: Array(orderIds)), cancelled: try store.cancellations(of: Array(orderIds)),
                            picks: try store.pickHistories(of: Array(cancelled)))
    }

    /// An order line is decided once: a confirmation that gives a line PostgreSQL
    /// holds, or an earlier event of the batch gave, another SKU, location or
    /// quantity is a bad event as a whole (contract, section 2). Checked on what
    /// the batch already read, before `claimOrderLines`, so that a bad event
    /// claims none of its lines; the claims catch what another worker has in flight.
    static func rejectChangedLines(_ dispositions: inout [Disposition], orders: OrderContext) {
        var seen: [String: [String: OrderLine]] = [:]
        for (index, disposition) in dispositions.enumerated() {
            guard case .apply(let decoded) = disposition, case .orderConfirmed(let orderId, let lines) = decoded.event.body else { continue }
            let stored = orders.lines[orderId] ?? []
            let changed = lines.first { line in
                if let earlier = seen[orderId]?[line.lineId] { return earlier != line }
                return stored.first { $0.lineId == line.lineId }.map { !$0.matches(line) } ?? false
            }
            if let changed {
                dispositions[index] = .deadLetter(.changedOrderLine(eventId: decoded.event.eventId, detail: "line '\(changed.lineId)'"))
                continue
            }
            for line in lines { seen[orderId, default: [:]][line.lineId] = line }
        }
    }

    /// The lines each cancellation to apply covers, as this worker sees them now:
    /// PostgreSQL's lines of the order and those confirmed earlier in the batch.
    /// `HotStore.claimLines` makes the first resolution of a cancellation stand.
    static func resolveCancellations(_ dispositions: [Disposition], orders: OrderContext) -> [(eventId: String, lines: [HotStore.CancelledLine])] {
        var batchLines: [String: [OrderLine]] = [:]
        var resolved: [(eventId: String, lines: [HotStore.CancelledLine])] = []
        for disposition in dispositions {
            guard case .apply(let decoded) = disposition else { continue }
            switch decoded.event.body {
            case .orderConfirmed(let orderId, let lines):
                batchLines[orderId, default: []] += lines
            case .orderCancelled(let orderId, let lineIds):
                let stored = orders.lines[orderId] ?? []
                let lines = (stored.map { HotStore.CancelledLine(lineId: $0.lineId, sku: $0.sku, locationId: $0.locationId, known: $0) }
                    + (batchLines[orderId] ?? []).filter { line in !stored.contains { $0.lineId == line.lineId } }
                        .map { HotStore.CancelledLine(lineId: $0.lineId, sku: $0.sku, locationId: $0.locationId, known: nil) })
                    .filter { lineIds?.contains($0.lineId) ?? true }
                resolved.append((decoded.event.eventId, lines))
            default:
                break
            }
        }
        return resolved
    }

    /// One script call per event and SKU: the deltas per location summed, picks
    /// tallied per order, order lines confirmed or cancelled. A pack moves nothing
    /// and needs none; a cycle count always runs, even with no variance, to learn
    /// the worker's onHand for the mirror drift. `everyLine`: every line a
    /// confirmation names, decided before or not (the keys a release may free).
    static func skuChanges(_ dispositions: [Disposition], orders: OrderContext, cancelledLines: [String: [HotStore.CancelledLine]],
                           everyLine: Bool = false) -> (changes: [SKUChange], owners: [Int]) {
        var changes: [SKUChange] = []
        var owners: [Int] = []
        var batchCancelled = orders.cancelled
        for (index, disposition) in dispositions.enumerated() {
            guard case .apply(let decoded) = disposition else { continue }
            let event = decoded.event
            var bySKU: [String: SKUChange] = [:]
            var order: [String] = []
            func change(_ sku: String, _ body: (inout SKUChange) -> Void) {
                if bySKU[sku] == nil {
                    order.append(sku)
                    bySKU[sku] = SKUChange(eventId: event.eventId, digest: decoded.digest, sku: sku)
                }
                body(&bySKU[sku]!)
            }
            for effect in event.effects where !effect.deltas.isZero || event.type == .cycleCountAdjustment {
                change(effect.sku) { change in
                    let location = change.location(effect.locationId)
                    change.locations[location].deltas = change.locations[location].deltas + effect.deltas
                }
            }
            switch event.body {
            case .pick(let orderId, let items):
                for item in items {
                    change(item.sku) { $0.picks.append(($0.location(event.locationId ?? ""), orderId, item.quantity)) }
                }
            case .orderConfirmed(let orderId, let lines):
                let decided = everyLine ? [] : Set((orders.lines[orderId] ?? []).map(\.lineId))
                for line in lines where !decided.contains(line.lineId) {
                    let cancelled = batchCancelled[orderId].map { $0.contains("*") || $0.contains(line.lineId) } ?? false
                    change(line.sku) { change in
                        change.confirms.append(SKUChange.Confirm(
                            location: change.location(line.locationId), orderId: orderId, lineId: line.lineId,
                            quantity: line.quantity, reservationId: line.reservationId, cancelled: cancelled))
                    }
                }
            case .orderCancelled(let orderId, let lineIds):
                for line in cancelledLines[event.eventId] ?? [] {
                    change(line.sku) { change in
                        change.cancels.append(SKUChange.Cancel(
                            location: change.location(line.locationId), orderId: orderId, lineId: line.lineId,
                            known: line.known.map { ($0.status, $0.quantity) },
                            picks: orders.picks[InventoryStore.PickPlace(orderId: orderId, sku: line.sku, locationId: line.locationId)] ?? PickHistory()))
                    }
                }
                batchCancelled[orderId, default: []].formUnion(lineIds ?? ["*"])
            default:
                break
            }
            for sku in order {
                changes.append(bySKU[sku]!)
                owners.append(index)
            }
        }
        return (changes, owners)
    }

    private func buildRecords(_ messages: [KafkaMessage], _ dispositions: inout [Disposition], changes: [SKUChange],
                              owners: [Int], outcomes: [SKUChangeOutcome], orders: OrderContext, nowMs: Int64,
                              report: inout BatchReport) -> BatchRecords {
        // Each event's script results; a conflict or a refusal on any SKU makes the event a dead letter.
        var resultsByMessage: [Int: [(SKUChange, SKUResult)]] = [:]
        var unapplied: [Int: String] = [:]
        for (position, outcome) in outcomes.enumerated() {
            let index = owners[position]
            switch outcome {
            case .conflict, .refused:
                guard case .apply(let decoded) = dispositions[index] else { continue }
                let eventId = decoded.event.eventId
                let bad: BadEvent = if case .refused(let why) = outcome {
                    .unappliable(eventId: eventId, sku: changes[position].sku, why: why)
                } else {
                    .conflict(eventId: eventId)
                }
                dispositions[index] = .deadLetter(bad)
                unapplied[index] = eventId
            case .applied(let result), .alreadyApplied(let result):
                resultsByMessage[index, default: []].append((changes[position], result))
            }
        }
        // Only when the store changed between the check and the scripts (another
        // writer, or another payload of the eventId at the same moment).
        for (index, eventId) in unapplied {
            guard let applied = resultsByMessage[index] else { continue }
            logger.error("event applied in Redis to some SKUs and dead-lettered: reconcile shows what it changed", metadata: [
                "event_id": "\(eventId)", "skus": "\(applied.map(\.0.sku).joined(separator: ","))",
            ])
        }

        var records = BatchRecords()
        for (index, disposition) in dispositions.enumerated() {
            let message = messages[index]
            switch disposition {
            case .alreadyApplied(let decoded):
                report.duplicated[decoded.event.type, default: 0] += 1
            case .deadLetter(let error):
                let outbox = OutboundMessages.deadLetter(message, error: error, topic: settings.deadLetterTopic)
                records.outbox.append(outbox)
                records.deadLetters.append(DeadLetterRecord(sourceTopic: message.topic, sourcePartition: message.partition,
                                                            sourceOffset: message.offset, error: error, messageId: outbox.messageId))
                report.deadLetters[error.code, default: 0] += 1
            case .apply(let decoded):
                let event = decoded.event
                report.applied[event.type, default: 0] += 1
                records.events.append(EventRecord(
                    eventId: event.eventId, eventType: event.type.rawValue, locationId: event.locationId,
                    occurredAtMs: event.occurredAtMs, canonicalJSON: String(decoding: decoded.canonicalJSON, as: UTF8.self),
                    digest: decoded.digest, sourceTopic: message.topic, sourcePartition: message.partition, sourceOffset: message.offset))
                // A pick's rows name its order: a cancellation counts the order's picks.
                let pickedFor: String? = if case .pick(let orderId, _) = event.body { orderId } else { nil }
                for effect in event.effects {
                    records.ledger.append(LedgerRecord(
                        eventId: event.eventId, eventType: event.type.rawValue, entryNo: records.ledger.count(for: event.eventId),
                        lineNo: effect.lineNo, orderId: pickedFor, sku: effect.sku, locationId: effect.locationId, deltas: effect.deltas,
                        touchesLevels: !effect.deltas.isZero || event.type == .cycleCountAdjustment))
                }
                let results = resultsByMessage[index] ?? []
                addOrderLines(for: event, results: results, orders: orders, nowMs: nowMs, into: &records, report: &report)
                addAlerts(for: event, results: results, nowMs: nowMs, into: &records, report: &report)
            }
        }
        return records
    }

    /// What the scripts decided for order lines: allocations, the ledger rows of
    /// every allocation and release, and the messages back to the warehouses.
    private func addOrderLines(for event: InboundEvent, results: [(SKUChange, SKUResult)], orders: OrderContext, nowMs: Int64,
                               into records: inout BatchRecords, report: inout BatchReport) {
        var allocated: [AllocationKey: [OutboundMessages.AllocationLine]] = [:]
        var released: [AllocationKey: [OutboundMessages.AllocationLine]] = [:]
        func ledger(_ change: SKUChange, location: String, order: String, line: String, _ deltas: Deltas) {
            records.ledger.append(LedgerRecord(
                eventId: event.eventId, eventType: event.type.rawValue, entryNo: records.ledger.count(for: event.eventId), lineNo: nil,
                orderId: order, lineId: line, sku: change.sku, locationId: location, deltas: deltas, touchesLevels: true))
        }
        let confirmedLines: [String: OrderLine] = if case .orderConfirmed(_, let lines) = event.body {
            Dictionary(lines.map { ($0.lineId, $0) }, uniquingKeysWith: { first, _ in first })
        } else { [:] }
        for (change, result) in results {
            for confirmed in result.confirms where !confirmed.existing {
                guard let line = confirmedLines[confirmed.lineId] else { continue }
                records.confirmedLines.append(ConfirmedLineRecord(
                    orderId: confirmed.orderId, line: line, decision: confirmed.decision, status: confirmed.status,
                    queueSeq: confirmed.queueSeq, eventId: event.eventId))
                report.decisions[confirmed.decision, default: 0] += 1
                guard confirmed.status == "allocated" else { continue }
                var deltas = Deltas([.allocated: line.quantity])
                if confirmed.decision == "reservation" { deltas[.reserved] = -line.quantity }
                ledger(change, location: line.locationId, order: confirmed.orderId, line: line.lineId, deltas)
                allocated[AllocationKey(orderId: confirmed.orderId, locationId: line.locationId), default: []]
                    .append(.init(lineId: line.lineId, sku: line.sku, quantity: line.quantity))
            }
            for fill in result.fills {
                let location = change.locations[fill.location].locationId
                records.filledLines.append(FilledLineRecord(orderId: fill.orderId, lineId: fill.lineId, sku: change.sku, locationId: location,
                                                            quantity: fill.quantity, confirmedBy: fill.confirmedBy, eventId: event.eventId))
                report.decisions["filled", default: 0] += 1
                ledger(change, location: location, order: fill.orderId, line: fill.lineId, Deltas([.allocated: fill.quantity]))
                allocated[AllocationKey(orderId: fill.orderId, locationId: location), default: []]
                    .append(.init(lineId: fill.lineId, sku: change.sku, quantity: fill.quantity))
            }
            for cancelled in result.cancels {
                let location = change.cancels.first { $0.orderId == cancelled.orderId && $0.lineId == cancelled.lineId }
                    .map { change.locations[$0.location].locationId }
                // A line the scripts released that PostgreSQL (with this batch) does
                // not hold as Redis did: its confirmation, or the fill that allocated
                // it, is in flight on another worker. Released once it commits, by
                // the late path, so that its ALLOCATION goes first.
                if !Self.holdsAsRedisReleased(cancelled, stored: orders.lines[cancelled.orderId], records: records), let location {
                    records.releasedBeforeAllocation.append(LateCancellationRecord(
                        pending: PendingCancellation(
                            line: StoredOrderLine(lineId: cancelled.lineId, sku: change.sku, locationId: location,
                                                  quantity: cancelled.quantity, status: cancelled.was),
                            orderId: cancelled.orderId, cancelEventId: event.eventId,
                            releasedInRedis: LineRelease(released: cancelled.released, picksUsed: cancelled.picksUsed)),
                        released: cancelled.released, picksUsed: cancelled.picksUsed))
                    continue
                }
                records.cancelledLines.append(LineChangeRecord(orderId: cancelled.orderId, lineId: cancelled.lineId,
                                                               eventId: event.eventId, released: cancelled.released,
                                                               picksUsed: cancelled.picksUsed))
                report.decisions["cancelled", default: 0] += 1
                guard cancelled.released > 0, let location else { continue }
                ledger(change, location: location, order: cancelled.orderId, line: cancelled.lineId, Deltas([.allocated: -cancelled.released]))
                released[AllocationKey(orderId: cancelled.orderId, locationId: location), default: []]
                    .append(.init(lineId: cancelled.lineId, sku: change.sku, quantity: cancelled.released))
            }
        }
        if case .orderCancelled(let orderId, let lineIds) = event.body {
            for lineId in lineIds ?? ["*"] {
                records.orderCancellations.append(OrderCancellationRecord(orderId: orderId, lineId: lineId, eventId: event.eventId))
            }
        }
        for (key, lines) in allocated.sorted(by: { ($0.key.orderId, $0.key.locationId) < ($1.key.orderId, $1.key.locationId) }) {
            records.outbox.append(OutboundMessages.allocation(.allocation, orderId: key.orderId, locationId: key.locationId, lines: lines,
                                                              causedBy: event.eventId, atMs: nowMs, topic: settings.allocationsTopic))
        }
        for (key, lines) in released.sorted(by: { ($0.key.orderId, $0.key.locationId) < ($1.key.orderId, $1.key.locationId) }) {
            records.outbox.append(OutboundMessages.allocation(.cancelled, orderId: key.orderId, locationId: key.locationId, lines: lines,
                                                              causedBy: event.eventId, atMs: nowMs, topic: settings.allocationsTopic))
        }
    }

    /// Whether PostgreSQL, with `records`, holds a line as Redis had it when a
    /// cancellation released it: confirmed, and allocated if Redis released it
    /// allocated.
    static func holdsAsRedisReleased(_ cancelled: SKUResult.Cancelled, stored: [StoredOrderLine]?, records: BatchRecords) -> Bool {
        let storedStatus = stored?.first { $0.lineId == cancelled.lineId }?.status
        let confirmedHere = records.confirmedLines.first { $0.orderId == cancelled.orderId && $0.line.lineId == cancelled.lineId }
        guard storedStatus != nil || confirmedHere != nil else { return false }
        guard cancelled.was == "allocated" else { return true }
        return storedStatus.map { $0 != "backordered" } == true || confirmedHere?.status == "allocated"
            || records.filledLines.contains { $0.orderId == cancelled.orderId && $0.lineId == cancelled.lineId }
    }

    private struct AllocationKey: Hashable {
        var orderId: String
        var locationId: String
    }

    private func addAlerts(for event: InboundEvent, results: [(SKUChange, SKUResult)], nowMs: Int64,
                           into records: inout BatchRecords, report: inout BatchReport) {
        var alerts: [AlertRecord] = []
        if case .cycleCount(let count) = event.body, let location = event.locationId {
            let workerOnHand = results.first { $0.0.sku == count.sku }?.1.locations.first?.onHandBefore ?? 0
            records.adjustments.append(AdjustmentRecord(eventId: event.eventId, locationId: location, count: count,
                                                        workerOnHand: workerOnHand, occurredAtMs: event.occurredAtMs))
            if count.exceeds(settings.varianceThresholds) {
                alerts.append(AlertRecord(messageId: OutboundMessages.varianceAlertID(eventId: event.eventId), eventId: event.eventId,
                                          sku: count.sku, locationId: location, kind: .variance(count), raisedAtMs: nowMs))
            }
        }
        // A bucket crossing from zero or above to below zero, as the script saw it.
        for (change, result) in results {
            for (location, seen) in zip(change.locations, result.locations) {
                for (bucket, before, after) in [("onHand", seen.onHandBefore, seen.onHandAfter),
                                                ("available", seen.availableBefore, seen.availableAfter)] where before >= 0 && after < 0 {
                    alerts.append(AlertRecord(
                        messageId: OutboundMessages.negativeAlertID(eventId: event.eventId, sku: change.sku, locationId: location.locationId, bucket: bucket),
                        eventId: event.eventId, sku: change.sku, locationId: location.locationId,
                        kind: .negative(bucket: bucket, value: after), raisedAtMs: nowMs))
                }
            }
        }
        for alert in alerts {
            records.alerts.append(alert)
            records.outbox.append(OutboundMessages.alert(alert, topic: settings.alertsTopic))
            report.alerts[alert.alertType, default: 0] += 1
        }
    }
}

extension [LedgerRecord] {
    /// The next entry number of an event: its rows are appended together, last.
    func count(for eventId: String) -> Int {
        var count = 0
        for record in reversed() {
            guard record.eventId == eventId else { break }
            count += 1
        }
        return count
    }
}

extension InboundEvent {
    /// Every SKU the event touches: for a cancellation, its order's, as PostgreSQL holds them.
    func skus(orders: [String: [StoredOrderLine]]) -> [String] {
        if case .orderCancelled(let orderId, _) = body { return (orders[orderId] ?? []).map(\.sku) }
        return skus
    }

    /// Every SKU the event names.
    var skus: [String] {
        switch body {
        case .receiving(_, let items), .pick(_, let items), .pack(_, let items), .ship(_, _, let items), .damage(_, let items),
             .transferShipped(_, _, let items), .transferReceived(_, _, let items):
            items.map(\.sku)
        case .cycleCount(let count): [count.sku]
        case .orderConfirmed(_, let lines): lines.map(\.sku)
        case .orderCancelled: []
        }
    }
}

extension ConfirmedLineRecord {
    /// The line as `allocations` holds it once written.
    var storedLine: StoredOrderLine {
        StoredOrderLine(lineId: line.lineId, sku: line.sku, locationId: line.locationId, quantity: line.quantity, status: status)
    }
}

extension FilledLineRecord {
    /// The line as `allocations` holds it once filled.
    var storedLine: StoredOrderLine {
        StoredOrderLine(lineId: lineId, sku: sku, locationId: locationId, quantity: quantity, status: "allocated")
    }
}
