import EdgeFormat
import EdgeRuntime
import RunSupport

/// Options every subcommand that runs the model shares.
struct RunOptions {
    static let options: [OptionSpec] = [
        .option("--threads", "threads", help: "Threads for matrix products and attention (default: the active processor count)."),
        .option("--micro-batch", "tokens", help: "Decoders: tokens per piece when a prompt or perplexity window runs (llama.cpp's -ub); a longer one runs in pieces of this many, through work buffers sized for one piece (default: \(EdgeModel.defaultMicroBatch); a multiple of 64 changes no result)."),
        .choice("--activations", "activations", help: "What the activations of symmetric q8, q4 and q4k weights are quantized to: i16 (default), q8 (faster, less accurate) or f32; it changes results and is reported with them.",
                default: ActivationPrecision.default),
        .choice("--kv-cache", "type", help: "Decoders: what the KV cache holds keys and values as: f32 (default) or f16 (llama.cpp's default: half the cache's memory; results move in the last digits, and are reported with it).",
                default: KVCachePrecision.f32),
        .choice("--kernels", "kernels", help: KernelChoice.kernelsHelp, default: KernelInfo.Level.auto),
        .choice("--gemm", "gemm", help: KernelChoice.gemmHelp, default: KernelInfo.GEMMMode.auto),
        .choice("--load", "load", help: "How the file's bytes are held: map (read-only map, shared with the page cache), copy (a private copy in 2 MB huge pages: faster decoding) or auto (default: copy where the kernel offers transparent huge pages and the file takes at most half of the available memory, else map).",
                default: Residency.auto),
        .choice("--sparse", "sparse", help: "What to do with sparse int8 matrices (bitmask, packed 2:4): keep (multiply the stored bytes), dense (dense int8 copies made at load: the dense file's memory and speed, the same results under the default i16 activations; reported as dense_copies) or auto (default: keep where the kernels decode sparse faster than dense, i.e. AVX-512 VBMI2; dense on AVX2, NEON and the scalar kernels, where sparse decoding is slower).",
                default: SparseWeights.auto),
    ]

    var threads: Int?
    var microBatch: Int?
    var activations: ActivationPrecision
    var kvCache: KVCachePrecision
    var kernel: KernelChoice
    var load: Residency
    var sparse: SparseWeights

    init(_ a: ParsedArguments) throws {
        threads = try a.value("--threads") { Int($0) }
        microBatch = try a.value("--micro-batch") { Int($0) }
        activations = try a.choice("--activations")
        kvCache = try a.choice("--kv-cache")
        kernel = KernelChoice(level: try a.choice("--kernels"), gemm: try a.choice("--gemm"))
        load = try a.choice("--load")
        sparse = try a.choice("--sparse")
    }

    func validate() throws {
        if let threads, threads < 1 { throw UsageError("--threads must be at least 1 (got \(threads))") }
        if let microBatch, microBatch < 1 { throw UsageError("--micro-batch must be at least 1 (got \(microBatch))") }
    }

    /// Opens the `.edge` model at `path` with these options applied (the kernel choice is process-wide).
    /// - Throws: as `EdgeModel(path:threads:)`.
    func open(_ path: String) throws -> EdgeModel {
        try kernel.apply()
        let m = try EdgeModel(path: path, threads: threads ?? EdgeModel.defaultThreads, residency: load, sparse: sparse)
        m.activations = activations
        m.kvCache = kvCache
        if let microBatch { m.microBatch = microBatch }
        return m
    }
}
