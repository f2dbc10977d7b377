import ArgumentParser

/// Options every subcommand that runs the model shares.
struct RunOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for matrix products and attention (default: the active processor count).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }
}
