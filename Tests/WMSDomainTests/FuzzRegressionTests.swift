import Foundation
import Testing

/// Every input the fuzzer (`scripts/fuzz`) ever failed on, kept in
/// `Fuzz/regressions/`, its seeds (`Fuzz/corpus/`) and the samples, through the
/// parser and the decoder: none may trap, and each keeps `DecoderInvariants`.
@Suite struct FuzzRegressionTests {
    static let folders = ["Fuzz/regressions", "Fuzz/corpus", "Tests/WMSDomainTests/Samples/valid", "Tests/WMSDomainTests/Samples/invalid"]

    /// Paths from the repository's root; hidden files (`.gitkeep`) left out.
    static func inputs() -> [String] {
        folders.flatMap { folder in
            let names = (try? FileManager.default.contentsOfDirectory(
                atPath: SampleAgreementTests.repositoryRoot.appending(path: folder).path)) ?? []
            return names.filter { !$0.hasPrefix(".") }.sorted().map { "\(folder)/\($0)" }
        }
    }

    @Test func seedsAndSamplesAreFound() {
        let inputs = Self.inputs()
        for folder in Self.folders.dropFirst() {
            #expect(inputs.contains { $0.hasPrefix(folder + "/") }, "nothing read from \(folder)")
        }
    }

    @Test(arguments: inputs())
    func inputKeepsTheDecoderInvariants(path: String) throws {
        let message = Array(try Data(contentsOf: SampleAgreementTests.repositoryRoot.appending(path: path)))
        for violation in DecoderInvariants.violations(of: message) {
            Issue.record("\(path): \(violation)")
        }
    }
}
