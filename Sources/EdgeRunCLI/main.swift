import ArgumentParser
import CLISupport
import EdgeFormat
import EdgeRuntime
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `edge-run`: the runtime-only tool. It links EdgeRuntime (format + kernels) and nothing of the
/// compressor, which proves a device can run `.edge` files with the runtime alone.
struct EdgeRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge-run",
        abstract: "Run and check .edge files with the bundled minimal runtime.",
        version: EdgeRuntimeInfo.version,
        subcommands: [InfoCommand.self, PerplexityCommand.self, GenerateCommand.self, BenchCommand.self]
    )
}

EdgeRun.mainWithOneLineErrors()
