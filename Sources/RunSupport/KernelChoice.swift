import EdgeRuntime

/// `--kernels` and `--gemm`: which SIMD level and GEMM micro-kernel run. Both change results in
/// the last bits, so they are options (never environment variables) and the tools report them
/// (`kernels` in `--json`). The defaults are the best level this CPU runs and the packed GEMM
/// from 12 tokens up; `--gemm dot` is the benchmarks' baseline. Both tools parse them (`compress`
/// through ArgumentParser's `KernelOptions` in CLISupport, `edge-run` by hand) into this.
public struct KernelChoice {
    /// The help text of `--kernels`.
    public static let kernelsHelp = "SIMD kernels: auto (the best this CPU runs), ref, avx2, avx512 or neon."
    /// The help text of `--gemm`.
    public static let gemmHelp = "GEMM micro-kernel: auto (packed outer-product from 12 tokens up) or dot (dot-product at every size, the benchmarks' baseline)."

    public var level: KernelInfo.Level
    public var gemm: KernelInfo.GEMMMode

    public init(level: KernelInfo.Level = .auto, gemm: KernelInfo.GEMMMode = .auto) {
        self.level = level
        self.gemm = gemm
    }

    /// Makes the chosen level and GEMM mode the process's (before any model runs).
    /// - Throws: `KernelChoiceError` (one line, no usage text) when this CPU or build cannot run the level.
    public func apply() throws {
        guard KernelInfo.use(level) else { throw KernelChoiceError(level: level) }
        KernelInfo.setGEMMMode(gemm)
    }
}

/// `--kernels` named a level this CPU or build cannot run.
public struct KernelChoiceError: Error, CustomStringConvertible {
    public let level: KernelInfo.Level
    public var description: String { "--kernels \(level.rawValue): this CPU or build cannot run it" }
}
