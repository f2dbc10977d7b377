import ArgumentParser
import RunSupport

extension ParsableCommand {
    /// `main()` with one guarantee added: an error thrown while the command runs (a refused file,
    /// tensor, field) is printed as one line (`exitWithOneLineError`) and the process exits 1.
    /// Argument errors, `--help` and `ExitCode` keep ArgumentParser's own handling (usage text included).
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
            exitWithOneLineError(error)
        }
    }
}
