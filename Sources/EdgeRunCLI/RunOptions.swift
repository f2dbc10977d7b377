import ArgumentParser
import CLISupport
import EdgeRuntime

/// Options every subcommand that runs the model shares.
struct RunOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for matrix products and attention (default: the active processor count).")
    var threads: Int?

    @Option(name: .long, help: "What the activations of symmetric q8 weights are quantized to; it changes results and is reported with them.")
    var activations: ActivationPrecision = .default

    @OptionGroup var kernel: KernelOptions

    func validate() throws {
        if let threads, threads < 1 { throw UsageError("--threads must be at least 1 (got \(threads))") }
    }

    /// Opens the `.edge` model at `path` with these options applied (the kernel choice is process-wide).
    /// - Throws: as `EdgeModel(path:threads:)`.
    func open(_ path: String) throws -> EdgeModel {
        try kernel.apply()
        let m = try EdgeModel(path: path, threads: threads ?? EdgeModel.defaultThreads)
        m.activations = activations
        return m
    }
}

extension ActivationPrecision: ExpressibleByArgument {}
