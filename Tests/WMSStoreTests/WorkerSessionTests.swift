import Postgres
import Testing
import TestSupport
import WMSStore

/// The worker's PostgreSQL sessions run its small statements without parallel
/// query, whose worker start-up cost more than the statements themselves.
@Suite struct WorkerSessionTests {
    @Test func theWorkersConnectionsRunWithoutParallelQuery() async throws {
        let (worker, plain) = try await blocking {
            (try InventoryStore.connect(url: TestEnvironment.postgresURL).query("SHOW max_parallel_workers_per_gather").first![0].string(),
             try PostgresConnection(url: TestEnvironment.postgresURL).query("SHOW max_parallel_workers_per_gather").first![0].string())
        }
        #expect(worker == "0")
        #expect(plain != "0")
    }
}
