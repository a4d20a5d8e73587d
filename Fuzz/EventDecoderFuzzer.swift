import WMSDomain

/// libFuzzer's entry point, built by `scripts/fuzz` (not by SwiftPM): each input
/// is a Kafka message value. It goes through the JSON parser and the event
/// decoder, which dispatches on `eventType`, never on the topic, so no topic is
/// chosen here. Besides a trap or a memory error (AddressSanitizer), an input
/// that breaks one of `DecoderInvariants` stops the run: the trap makes
/// libFuzzer keep it as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEventDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let message = Array(UnsafeBufferPointer(start: data, count: size))
    let violations = DecoderInvariants.violations(of: message)
    if !violations.isEmpty {
        fatalError("decoder invariants broken:\n- " + violations.joined(separator: "\n- "))
    }
    return 0
}
