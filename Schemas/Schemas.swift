import Foundation

/// The schemas as files that ship beside the binary (SwiftPM resources):
/// `postgres/` holds the PostgreSQL migrations, applied in version order by
/// `wms-worker migrate`.
public enum Schemas {
    /// The folder of PostgreSQL migrations, `NNNN_name.sql`.
    public static var postgresMigrations: URL {
        Bundle.module.url(forResource: "postgres", withExtension: nil)!
    }
}
