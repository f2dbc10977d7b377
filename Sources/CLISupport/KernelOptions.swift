import ArgumentParser
import EdgeRuntime

/// `--kernels` and `--gemm`: which SIMD level and GEMM micro-kernel run. Both change results in
/// the last bits, so they are options (never environment variables) and the tools report them
/// (`kernels` in `--json`). The defaults are the best level this CPU runs and the packed GEMM
/// from 12 tokens up; `--gemm dot` is the benchmarks' baseline.
public struct KernelOptions: ParsableArguments {
    @Option(name: .long, help: "SIMD kernels: auto (the best this CPU runs), ref, avx2, avx512 or neon.")
    public var kernels: KernelInfo.Level = .auto

    @Option(name: .long, help: "GEMM micro-kernel: auto (packed outer-product from 12 tokens up) or dot (dot-product at every size, the benchmarks' baseline).")
    public var gemm: KernelInfo.GEMMMode = .auto

    public init() {}

    public func validate() throws {
        if !KernelInfo.available(kernels) {
            throw ValidationError("--kernels \(kernels.rawValue): this CPU or build cannot run it")
        }
    }

    /// Makes the chosen level and GEMM mode the process's (before any model runs).
    public func apply() {
        KernelInfo.use(kernels)
        KernelInfo.setGEMMMode(gemm)
    }
}

extension KernelInfo.Level: ExpressibleByArgument {}
extension KernelInfo.GEMMMode: ExpressibleByArgument {}
