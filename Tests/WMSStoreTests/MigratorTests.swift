import Foundation
import Postgres
import Testing
import TestSupport
import WMSStore

@Suite struct MigratorTests {
    /// Runs `body` with a connection whose search_path is a fresh schema of its own.
    static func inFreshSchema<T: Sendable>(_ body: @Sendable @escaping (@escaping @Sendable () throws -> PostgresConnection) throws -> T) async throws -> T {
        let schema = try await FreshSchema.create()
        do {
            let result = try await blocking { try body { try PostgresConnection(url: schema.url) } }
            try await schema.drop()
            return result
        } catch {
            try? await schema.drop()
            throw error
        }
    }

    @Test func appliesTheShippedMigrationsOnceAndAgainChangesNothing() async throws {
        let outcome = try await Self.inFreshSchema { connect in
            let db = try connect()
            let migrator = try Migrator()
            let first = try migrator.migrate(db)
            let second = try migrator.migrate(db)
            let tables = try db.query("""
                SELECT table_name FROM information_schema.tables
                WHERE table_schema = current_schema() ORDER BY table_name
                """).rows.map { try $0["table_name"].string() }
            return (first.map(\.version), second.count, tables, migrator.migrations.map(\.version))
        }
        #expect(outcome.0 == outcome.3)
        #expect(outcome.1 == 0)
        #expect(outcome.2.contains("inventory_levels"))
        #expect(outcome.2.contains("inventory_events"))
        #expect(outcome.2.contains("inventory_transactions"))
        #expect(outcome.2.contains("schema_migrations"))
    }

    @Test func aMigrationEditedAfterItRanIsRefused() async throws {
        let error = try await Self.inFreshSchema { connect in
            let db = try connect()
            try Migrator(migrations: [Migration(version: 1, name: "t", sql: "CREATE TABLE t (a int)")]).migrate(db)
            do {
                try Migrator(migrations: [Migration(version: 1, name: "t", sql: "CREATE TABLE t (a bigint)")]).migrate(db)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(error.contains("was changed after it was applied"))
    }

    @Test func aDatabaseFromANewerReleaseIsRefused() async throws {
        let error = try await Self.inFreshSchema { connect in
            let db = try connect()
            try Migrator(migrations: [Migration(version: 1, name: "a", sql: "SELECT 1"), Migration(version: 2, name: "b", sql: "SELECT 2")]).migrate(db)
            do {
                try Migrator(migrations: [Migration(version: 1, name: "a", sql: "SELECT 1")]).migrate(db)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(error.contains("has migration 2"))
    }

    @Test func aFailingMigrationLeavesNothingBehind() async throws {
        let outcome = try await Self.inFreshSchema { connect in
            let db = try connect()
            let broken = try Migrator(migrations: [
                Migration(version: 1, name: "ok", sql: "CREATE TABLE ok (a int)"),
                Migration(version: 2, name: "broken", sql: "CREATE TABLE half (a int); SELECT no_such_column FROM ok"),
            ])
            let failure = (try? broken.migrate(db)) == nil
            let tables = try db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1")
                .rows.map { try $0["table_name"].string() }
            return (failure, tables)
        }
        #expect(outcome.0)
        #expect(outcome.1 == ["ok", "schema_migrations"])
    }

    @Test func twoMigratorsStartingTogetherApplyEachMigrationOnce() async throws {
        let schema = try await FreshSchema.create()
        let migrator = try Migrator()
        async let first = blocking { try migrator.migrate(try PostgresConnection(url: schema.url)).count }
        async let second = blocking { try migrator.migrate(try PostgresConnection(url: schema.url)).count }
        let counts = try await [first, second]
        try await schema.drop()
        #expect(counts.sorted() == [0, migrator.migrations.count])
    }
}

