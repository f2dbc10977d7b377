import EdgeFormat
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Prints `error` as the one line both tools end with when a command fails (a refused file,
/// tensor, field, option value): "Error: " and the description, control characters escaped, at
/// most 300 bytes with the newline, on stderr; then exits with `code`.
public func exitWithOneLineError(_ error: Error, code: Int32 = 1) -> Never {
    writeStandardError("Error: " + Excerpt.oneLine(String(describing: error), limit: 293) + "\n")
    exit(code)
}

/// A wrong option value, reported as one line without the usage text (a value out of range
/// deserves one line naming it).
public struct UsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
