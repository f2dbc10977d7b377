import EdgeFormat
import EdgeRuntime
import RunSupport

/// Options every subcommand that runs the model shares.
struct RunOptions {
    static let options: [OptionSpec] = [
        .option("--threads", "threads", help: "Threads for matrix products and attention (default: the active processor count)."),
        .choice("--activations", "activations", help: "What the activations of symmetric q8, q4 and q4k weights are quantized to: i16 (default), q8 (faster, less accurate) or f32; it changes results and is reported with them.",
                default: ActivationPrecision.default),
        .choice("--kernels", "kernels", help: KernelChoice.kernelsHelp, default: KernelInfo.Level.auto),
        .choice("--gemm", "gemm", help: KernelChoice.gemmHelp, default: KernelInfo.GEMMMode.auto),
        .choice("--load", "load", help: "How the file's bytes are held: map (read-only map, shared with the page cache), copy (a private copy in 2 MB huge pages: faster decoding) or auto (default: copy where the kernel offers transparent huge pages and the file takes at most half of the available memory, else map).",
                default: Residency.auto),
        .choice("--sparse", "sparse", help: "What to do with sparse int8 matrices (bitmask, packed 2:4): keep (multiply the stored bytes), dense (dense int8 copies made at load: the dense file's memory and speed, the same results under the default i16 activations; reported as dense_copies) or auto (default: keep where the kernels decode sparse faster than dense, i.e. AVX-512 VBMI2; dense on AVX2, NEON and the scalar kernels, where sparse decoding is slower).",
                default: SparseWeights.auto),
    ]

    var threads: Int?
    var activations: ActivationPrecision
    var kernel: KernelChoice
    var load: Residency
    var sparse: SparseWeights

    init(_ a: ParsedArguments) throws {
        threads = try a.value("--threads") { Int($0) }
        activations = try a.choice("--activations")
        kernel = KernelChoice(level: try a.choice("--kernels"), gemm: try a.choice("--gemm"))
        load = try a.choice("--load")
        sparse = try a.choice("--sparse")
    }

    func validate() throws {
        if let threads, threads < 1 { throw UsageError("--threads must be at least 1 (got \(threads))") }
    }

    /// Opens the `.edge` model at `path` with these options applied (the kernel choice is process-wide).
    /// - Throws: as `EdgeModel(path:threads:)`.
    func open(_ path: String) throws -> EdgeModel {
        try kernel.apply()
        let m = try EdgeModel(path: path, threads: threads ?? EdgeModel.defaultThreads, residency: load, sparse: sparse)
        m.activations = activations
        return m
    }
}
