import ArgumentParser
import EdgeFormat
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ParsableCommand {
    /// `main()` with one guarantee added: an error thrown while the command runs (a refused file,
    /// tensor, field) is printed as one line of at most 300 bytes on stderr, control characters
    /// escaped, and the process exits 1. Argument errors, `--help` and `ExitCode` keep
    /// ArgumentParser's own handling (usage text included).
    public static func mainWithOneLineErrors() -> Never {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            try command.run()
            exit()
        } catch let error where error is ExitCode || error is CleanExit || error is ValidationError
            // ArgumentParser's own requests: `--help` parses as its help command, whose run throws one.
            || String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            exit(withError: error)
        } catch {
            let line = "Error: " + Excerpt.oneLine(String(describing: error), limit: 293) + "\n"
            fputs(line, stderr)
            #if canImport(Glibc)
            Glibc.exit(1)
            #else
            Darwin.exit(1)
            #endif
        }
    }
}

/// A wrong option value, reported as one line without the usage text (ArgumentParser's
/// `ValidationError` adds the usage; a value out of range deserves one line naming it).
public struct UsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
