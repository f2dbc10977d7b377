import EdgeRuntime

/// `edge-run`: the runtime-only tool. It links EdgeRuntime (format + kernels) and nothing of the
/// compressor, which proves a device can run `.edge` files with the runtime alone; nor anything that
/// imports Foundation (see Arguments.swift).
let edgeRun = Tool(
    name: "edge-run",
    abstract: "Run and check .edge files with the bundled minimal runtime.",
    version: EdgeRuntimeInfo.version,
    subcommands: [InfoCommand.self, PerplexityCommand.self, GenerateCommand.self, EmbedCommand.self, BenchCommand.self]
)

edgeRun.main(Array(CommandLine.arguments.dropFirst()))
