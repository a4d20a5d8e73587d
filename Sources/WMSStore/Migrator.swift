import Foundation
import Postgres
import WMSSchemas

/// One versioned schema change: `NNNN_name.sql`, applied once, in version order.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

public enum MigrationError: Error, CustomStringConvertible {
    case badFileName(String)
    case duplicateVersion(Int)
    /// A migration already applied was edited afterwards: the database does not
    /// hold what the file now says.
    case changedAfterApplying(version: Int, name: String)
    /// The database was migrated by a newer release than this binary.
    case databaseIsNewer(version: Int)

    public var description: String {
        switch self {
        case .badFileName(let name): "migration file \(name) is not named NNNN_name.sql"
        case .duplicateVersion(let version): "two migration files have version \(version)"
        case .changedAfterApplying(let version, let name):
            "migration \(version) (\(name)) was changed after it was applied; add a new migration instead"
        case .databaseIsNewer(let version):
            "the database has migration \(version), which this binary does not know: it is older than the schema"
        }
    }
}

/// Applies migrations to PostgreSQL: each in a transaction of its own, recorded in
/// `schema_migrations` with a checksum, under an advisory lock so that two workers
/// starting together do not race. Running it again changes nothing.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    public init(migrations: [Migration]) throws(MigrationError) {
        var seen = Set<Int>()
        for migration in migrations where !seen.insert(migration.version).inserted {
            throw .duplicateVersion(migration.version)
        }
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Reads every `NNNN_name.sql` in `directory`.
    public init(directory: URL = Schemas.postgresMigrations) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
        try self.init(migrations: files.map { file in
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]), version > 0 else {
                throw MigrationError.badFileName(file)
            }
            return Migration(version: version, name: String(stem[stem.index(after: underscore)...]),
                             sql: try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8))
        })
    }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Applies what is missing and returns it; throws when the database and these
    /// migrations disagree.
    @discardableResult
    public func migrate(_ db: PostgresConnection) throws -> [Migration] {
        // A session-level lock: held across the per-migration transactions. One
        // per schema: deployments sharing a database do not wait for each other.
        try db.query("SELECT pg_advisory_lock(hashtext('wms-worker schema migrations'), hashtext(coalesce(current_schema(), '')))")
        defer {
            _ = try? db.query("SELECT pg_advisory_unlock(hashtext('wms-worker schema migrations'), hashtext(coalesce(current_schema(), '')))")
        }
        try db.execute(script: """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let applied = try appliedVersions(db)
        var done: [Migration] = []
        for migration in migrations where !applied.contains(migration.version) {
            try db.withTransaction { tx in
                try tx.execute(script: migration.sql)
                try tx.query("""
                    INSERT INTO schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), encode(sha256(convert_to(\(migration.sql), 'UTF8')), 'hex'))
                    """)
            }
            done.append(migration)
        }
        return done
    }

    /// The versions applied, after checking that each still matches its file.
    public func appliedVersions(_ db: PostgresConnection) throws -> Set<Int> {
        var applied = Set<Int>()
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for row in try db.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version").rows {
            let version = Int(try row["version"].int())
            guard let migration = known[version] else { throw MigrationError.databaseIsNewer(version: version) }
            let same = try db.query("""
                SELECT encode(sha256(convert_to(\(migration.sql), 'UTF8')), 'hex') = \(try row["checksum"].string()) AS same
                """).first!["same"].bool()
            guard same else { throw MigrationError.changedAfterApplying(version: version, name: migration.name) }
            applied.insert(version)
        }
        return applied
    }
}
