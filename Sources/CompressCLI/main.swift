import ArgumentParser
import CLISupport
import Checkpoint
import Compression
import EdgeFormat
import EdgeRuntime
import Foundation
#if canImport(Glibc)
import Glibc
import RunSupport
#endif

/// `compress`: checkpoint in, `.edge` out; plus inspect and export.
struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Compress a language model checkpoint into a compact .edge file.",
        discussion: """
        Inputs: a Hugging Face folder (config.json + model.safetensors or sharded shards + index), \
        a .safetensors file beside its config.json, a llama.cpp .gguf file, or an .edge file.
        Example: compress --recipe Recipes/int8-prune50.json Fixtures/tiny-llama out.edge
        """,
        version: toolchainVersion,
        subcommands: [Convert.self, Inspect.self, Export.self, Verify.self, ReportCommand.self, TrainCommand.self],
        defaultSubcommand: Convert.self
    )
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Run a recipe over a checkpoint and write an .edge file (the default command)."
    )

    @Option(name: .long, help: "Recipe JSON file (see Recipes/ and docs/recipes.md).")
    var recipe: String

    @Option(name: .long, help: "Calibration text for passes that need it.")
    var data: String?

    @Option(name: .long, help: "Folder for distillation checkpoints: an interrupted run started again with the same folder resumes where it stopped.")
    var checkpointDir: String?

    @Flag(name: .long, help: "Print a JSON summary on stdout instead of text.")
    var json = false

    @OptionGroup var kernel: KernelOptions

    @Flag(name: .long, help: "Deflate tensor payloads (smaller download; the runtime inflates at load). Same as \"deflate\": true in the recipe.")
    var deflate = false

    @Option(name: .long, help: "Memory the run may use (e.g. 2G, 1500M): a recipe estimated to need more is refused before any work, saying how much it needs.")
    var maxMemory: String?

    @Argument(help: "Input checkpoint: HF folder, .safetensors, .gguf or .edge.")
    var input: String

    @Argument(help: "Output .edge file (written atomically).")
    var output: String

    func run() throws {
        // Checked here, not in validate(): a ValidationError prints the usage too, and a bad path deserves one line.
        if let data, !FileManager.default.fileExists(atPath: data) { throw UsageError("--data \(data): no such file") }
        try kernel.apply()
        var recipe = try Recipe.load(path: self.recipe)
        if deflate { recipe.deflate = true }
        let pipeline = Pipeline(recipe: recipe, recipeFile: self.recipe)
        let bar = ProgressBar(label: "compress")
        var limit: Int?
        if let maxMemory {
            guard let bytes = MemoryEstimate.parseSize(maxMemory) else {
                throw UsageError("--max-memory \(Excerpt.quoted(maxMemory)): expected a size such as 2G, 1500M or 512MiB")
            }
            limit = bytes
        }
        let summary = try pipeline.run(input: input, output: output, calibrationText: data, checkpointDir: checkpointDir, maxMemory: limit,
                                       onEstimate: { e in
            // Said before long runs start on a terminal (beside the progress bar), and when a limit is
            // given and met; a refused run prints only its one error line.
            let shown = isatty(STDERR_FILENO) != 0 ? e.phase != "stream" || limit != nil : limit.map { e.bytes <= $0 } ?? false
            if shown {
                FileHandle.standardError.write(Data("memory: about \(MemoryEstimate.format(e.bytes)) (\(e.phase))\n".utf8))
            }
        }) { done, total, item in
            bar.update(done: done, total: total, item: item)
        }
        bar.finish()
        for w in summary.warnings { FileHandle.standardError.write(Data("warning: \(Excerpt.oneLine(w))\n".utf8)) }
        // Timings (distillation's wall time and throughput) differ from run to run, so they are
        // reported here and never written into the file.
        for case let .object(t) in summary.timings {
            let what = t.filter { $0.key != "pass" && $0.key != "index" }.sorted { $0.key < $1.key }
                .map { "\($0.key) \($0.value.doubleValue.map { String(format: "%.1f", $0) } ?? $0.value.compactString)" }
            let index = t["index"]?.doubleValue.map { Int($0) } ?? 0
            FileHandle.standardError.write(Data("passes[\(index)] \(t["pass"]?.stringValue ?? "?"): \(what.joined(separator: ", "))\n".utf8))
        }
        if json {
            let o: JSONValue = .object([
                "output": .string(summary.output), "bytes": .number(Double(summary.bytes)),
                "parameters": .number(Double(summary.parameters)), "bits_per_weight": .number(summary.bitsPerWeight),
                "seconds": .number(summary.seconds), "recipe": .string(recipe.name), "passes": .array(summary.records),
                "timings": .array(summary.timings), "kernels": KernelInfo.current().jsonValue,
            ])
            print(o.prettyText())
        } else {
            print(String(format: "%@: %@ bytes, %.2f bits/weight over %@ weights, recipe %@, %.1fs",
                         summary.output, "\(summary.bytes)", summary.bitsPerWeight, "\(summary.parameters)", recipe.name, summary.seconds))
        }
    }
}

// Remove temporary output files on Ctrl-C / SIGTERM so an interrupted run leaves no partial output.
for sig in [SIGINT, SIGTERM] {
    signal(sig) { s in
        AtomicOutput.removeAllPending()
        _exit(128 + s)
    }
}
Compress.mainWithOneLineErrors()
