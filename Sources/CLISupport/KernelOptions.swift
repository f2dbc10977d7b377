import ArgumentParser
import EdgeRuntime
import RunSupport

/// `--kernels` and `--gemm` for an ArgumentParser command (`compress`); what they mean and do is
/// `KernelChoice` (RunSupport), which `edge-run` parses by hand.
public struct KernelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(KernelChoice.kernelsHelp))
    public var kernels: KernelInfo.Level = .auto

    @Option(name: .long, help: ArgumentHelp(KernelChoice.gemmHelp))
    public var gemm: KernelInfo.GEMMMode = .auto

    public init() {}

    /// `KernelChoice.apply()` with these options.
    public func apply() throws { try KernelChoice(level: kernels, gemm: gemm).apply() }
}

extension KernelInfo.Level: ExpressibleByArgument {}
extension KernelInfo.GEMMMode: ExpressibleByArgument {}
