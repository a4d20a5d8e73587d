import Testing
import WMSDomain

@Suite struct EffectsTests {
    private func effect(_ lineNo: Int, _ sku: String, at locationId: String, _ changes: [Bucket: Int64]) -> QuantityEffect {
        QuantityEffect(lineNo: lineNo, sku: sku, locationId: locationId, deltas: Deltas(changes))
    }

    @Test func receivingAddsOnHand() throws {
        #expect(try Fixtures.event(.receivingComplete).effects == [
            effect(0, "SKU-1", at: "FC-1", [.onHand: 5]),
            effect(1, "SKU-2", at: "FC-1", [.onHand: 2]),
        ])
    }

    @Test func pickMovesAllocatedStockToPicked() throws {
        #expect(try Fixtures.event(.pickComplete).effects == [
            effect(0, "SKU-1", at: "FC-1", [.allocated: -5, .onHand: -5, .picked: 5]),
            effect(1, "SKU-2", at: "FC-1", [.allocated: -2, .onHand: -2, .picked: 2]),
        ])
    }

    @Test func packIsLedgerOnly() throws {
        let effects = try Fixtures.event(.packComplete).effects
        #expect(effects == [effect(0, "SKU-1", at: "FC-1", [:]), effect(1, "SKU-2", at: "FC-1", [:])])
        #expect(effects.allSatisfy { $0.deltas.isZero })
    }

    @Test func shipReleasesPicked() throws {
        #expect(try Fixtures.event(.shipComplete).effects == [
            effect(0, "SKU-1", at: "FC-1", [.picked: -5]),
            effect(1, "SKU-2", at: "FC-1", [.picked: -2]),
        ])
    }

    @Test(arguments: [(100, 97, -3), (10, 25, 15), (40, 40, 0), (0, 0, 0)] as [(Int64, Int64, Int64)])
    func cycleCountAppliesTheVariance(expected: Int64, actual: Int64, delta: Int64) throws {
        var fields = Fixtures.message(.cycleCountAdjustment)
        fields["expectedCount"] = .integer(expected)
        fields["actualCount"] = .integer(actual)
        #expect(try Fixtures.event(fields).effects == [effect(0, "SKU-1", at: "FC-1", [.onHand: delta])])
    }

    @Test func damageMovesOnHandToDamaged() throws {
        #expect(try Fixtures.event(.damageReport).effects == [
            effect(0, "SKU-1", at: "FC-1", [.onHand: -5, .damaged: 5]),
            effect(1, "SKU-2", at: "FC-1", [.onHand: -2, .damaged: 2]),
        ])
    }

    @Test func transferShippedTouchesBothLocations() throws {
        #expect(try Fixtures.event(.transferShipped).effects == [
            effect(0, "SKU-1", at: "FC-1", [.onHand: -5, .inTransitOut: 5]),
            effect(0, "SKU-1", at: "FC-2", [.inTransitIn: 5]),
            effect(1, "SKU-2", at: "FC-1", [.onHand: -2, .inTransitOut: 2]),
            effect(1, "SKU-2", at: "FC-2", [.inTransitIn: 2]),
        ])
    }

    @Test func transferReceivedTouchesBothLocations() throws {
        #expect(try Fixtures.event(.transferReceived).effects == [
            effect(0, "SKU-1", at: "FC-1", [.inTransitIn: -5, .onHand: 5]),
            effect(0, "SKU-1", at: "FC-2", [.inTransitOut: -5]),
            effect(1, "SKU-2", at: "FC-1", [.inTransitIn: -2, .onHand: 2]),
            effect(1, "SKU-2", at: "FC-2", [.inTransitOut: -2]),
        ])
    }

    /// Shipping a transfer from FC-1 and receiving it at FC-2 moves stock and
    /// leaves nothing in transit.
    @Test func aCompletedTransferNetsOut() throws {
        var received = Fixtures.message(.transferReceived)
        received["locationId"] = "FC-2"
        received["fromLocationId"] = "FC-1"
        let all = try Fixtures.event(.transferShipped).effects + Fixtures.event(received).effects
        var net: [String: Deltas] = [:]
        for effect in all {
            net[effect.sku + "@" + effect.locationId, default: Deltas()] = net[effect.sku + "@" + effect.locationId, default: Deltas()] + effect.deltas
        }
        #expect(net["SKU-1@FC-1"] == Deltas([.onHand: -5]))
        #expect(net["SKU-1@FC-2"] == Deltas([.onHand: 5]))
        #expect(net["SKU-2@FC-2"] == Deltas([.onHand: 2]))
    }

    @Test(arguments: [EventType.orderConfirmed, .orderCancelled])
    func orderEventsHaveNoDirectEffects(type: EventType) throws {
        var fields = Fixtures.message(type)
        fields["locationId"] = "FC-1"
        #expect(try Fixtures.event(fields).effects.isEmpty)
        #expect(try Fixtures.event(type).effects.isEmpty)
    }
}
