import Foundation
import Testing
import TestSupport
import WMSDomain

/// The sample messages under `Samples/` judged twice: by `EventDecoder` and by
/// the JSON Schemas of `Schemas/json` (through `validate_samples.py`), which must
/// agree. `valid/` samples are events; each `invalid/` sample is named after the
/// code it must be rejected with (`INVALID_FIELD-quantity-zero.json`). The
/// TOO_LARGE case is built in code (EventDecoderRuleTests), not committed.
@Suite struct SampleAgreementTests {
    static let samples = Bundle.module.url(forResource: "Samples", withExtension: nil)!
    static let repositoryRoot = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func sampleNames(_ folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: samples.appending(path: folder).path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted()
    }

    static func decode(_ folder: String, _ name: String) throws -> Result<DecodedEvent, BadEvent> {
        EventDecoder.decode(Array(try Data(contentsOf: samples.appending(path: folder).appending(path: name))))
    }

    /// The code an invalid sample's name starts with.
    static func expectedCode(_ name: String) -> BadEventCode? {
        BadEventCode(rawValue: String(name.prefix { $0 != "-" }))
    }

    @Test func samplesCoverEveryTypeAndEveryDecoderCode() {
        let valid = Self.sampleNames("valid")
        for type in EventType.allCases {
            #expect(valid.contains { $0.hasPrefix(type.rawValue) }, "no valid sample of \(type.rawValue)")
        }
        let codes = Set(Self.sampleNames("invalid").compactMap(Self.expectedCode))
        #expect(codes == [.invalidJSON, .invalidField, .unknownEventType])
    }

    @Test(arguments: sampleNames("valid"))
    func validSampleDecodes(name: String) throws {
        let result = try Self.decode("valid", name)
        #expect(throws: Never.self, "\(name)") { try result.get() }
        let event = try result.get().event
        #expect(name.hasPrefix(event.type.rawValue))
    }

    @Test(arguments: sampleNames("invalid"))
    func invalidSampleFailsWithTheCodeInItsName(name: String) throws {
        let code = try #require(Self.expectedCode(name), "\(name) does not start with an error code")
        let bad = try #require(try Self.decode("invalid", name).failure, "\(name) decoded")
        #expect(bad.code == code, "\(name): \(bad)")
        #expect(!bad.detail.isEmpty)
    }

    @Test func schemasAgreeWithTheDecoder() throws {
        let verdicts = try runValidator()

        let inbound = try #require(verdicts["inbound"]?.objectValue)
        var judged = 0
        for folder in ["valid", "invalid"] {
            for name in Self.sampleNames(folder) {
                let code = Self.expectedCode(name)
                guard code != .invalidJSON, code != .tooLarge else { continue }
                judged += 1
                let schemaError = try #require(inbound[name], "the validator did not judge \(name)")
                let decoderResult = try Self.decode(folder, name)
                switch (decoderResult, schemaError) {
                case (.success, .null), (.failure, .string):
                    break
                case (.success, _):
                    Issue.record("\(name): the decoder accepts it, the schema rejects it: \(schemaError)")
                case (.failure(let bad), _):
                    Issue.record("\(name): the schema accepts it, the decoder rejects it: \(bad)")
                }
            }
        }
        #expect(judged == inbound.count)

        let outbound = try #require(verdicts["outbound"]?.objectValue)
        for folder in ["valid", "invalid"] {
            let names = Self.sampleNames("outbound/\(folder)")
            #expect(!names.isEmpty)
            for name in names {
                let schemaError = try #require(outbound[name], "the validator did not judge \(name)")
                #expect(schemaError.isNull == (folder == "valid"), "outbound \(folder)/\(name): \(schemaError)")
            }
        }
    }

    /// Runs `validate_samples.py` with the `python3` on PATH; a missing python3 or
    /// jsonschema fails the test with the reason.
    private func runValidator() throws -> JSONValue {
        let script = Self.repositoryRoot.appending(path: "Tests/WMSDomainTests/validate_samples.py")
        let schemas = Self.repositoryRoot.appending(path: "Schemas/json")
        let finished = try ChildProcesses.run(["python3", script.path, schemas.path, Self.samples.path], errorsApart: true)
        guard finished.status == 0 else {
            throw ValidatorFailure(description: "validate_samples.py failed (exit \(finished.status)): "
                + (finished.status == 127 ? "python3 is not on PATH (scripts/install-deps)" : String(decoding: finished.errors, as: UTF8.self)))
        }
        return try JSONValue.parse(Array(finished.output))
    }
}

private struct ValidatorFailure: Error, CustomStringConvertible {
    var description: String
}
