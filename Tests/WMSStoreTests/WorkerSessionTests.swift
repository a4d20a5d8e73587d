import Postgres
import Testing
import TestSupport
import WMSStore

/// The worker's PostgreSQL sessions run its statements by key: no sequential scan
/// where an index serves (statistics lag while tables grow fast), no parallel
/// query (its workers' start-up cost more than the statements themselves), no JIT.
@Suite struct WorkerSessionTests {
    @Test func theWorkersConnectionsUseIndexesWithoutParallelQueryOrJIT() async throws {
        let (worker, plain) = try await blocking {
            func settings(_ db: PostgresConnection) throws -> String {
                try db.query("""
                    SELECT current_setting('enable_seqscan') || ' ' || current_setting('max_parallel_workers_per_gather')
                           || ' ' || current_setting('jit') AS s
                    """)
                    .first!["s"].string()
            }
            return (try settings(InventoryStore.connect(url: TestEnvironment.postgresURL)),
                    try settings(PostgresConnection(url: TestEnvironment.postgresURL)))
        }
        #expect(worker == "off 0 off")
        #expect(plain != "off 0 off")
    }
}
