import Foundation

/// Lines for the operator on standard output, written at once (not held in
/// `print`'s buffer when stdout is a pipe), so they interleave with the log lines
/// on standard error in the order they happened.
public func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
