import EdgeFormat
import EdgeKernels

/// The kernels this process runs, for reports (`--json`, `edge-run info`): the SIMD level, the GEMM
/// mode, and the micro-kernel behind each matrix product for a given token count.
///
/// The level and the GEMM mode change results in the last bits (kernels sum in different orders),
/// so both are explicit choices, never read from the environment: `KernelInfo.use(_:)` and
/// `KernelInfo.setGEMMMode(_:)` (the tools' `--kernels` and `--gemm` options); they start as the
/// best level this CPU runs and `.auto`, and every report names them.
public struct KernelInfo: Equatable, Sendable, Codable {
    /// Which micro-kernel the float-activation GEMMs run (`edge_gemm_mode`).
    public enum GEMMMode: String, CaseIterable, Sendable, Codable {
        /// The packed outer-product kernel from 12 tokens up, the dot-product one below (the default).
        case auto
        /// The dot-product kernel for every token count (the benchmarks' baseline).
        case dot
    }

    /// A SIMD level to run (`edge_kernel_level`); `.auto` is the best this CPU runs.
    public enum Level: String, CaseIterable, Sendable, Codable {
        case auto, ref, avx2, avx512, neon

        var cLevel: edge_kernel_level {
            switch self {
            case .auto: EDGE_KERNELS_AUTO
            case .ref: EDGE_KERNELS_REF
            case .avx2: EDGE_KERNELS_AVX2
            case .avx512: EDGE_KERNELS_AVX512
            case .neon: EDGE_KERNELS_NEON
            }
        }
    }

    /// The matrix products a report names (`edge_gemm_op`), by their kernel's suffix.
    public enum Product: String, CaseIterable, Sendable, Codable {
        case f32, f16, q8_f32, q4_f32, q3_f32, q4k_f32, q3s_f32, q8_q8, q8_q8b32, q8_i16, q4_i16, q4_q8b32, q4_i16_gemm, q4k_i16, q4k_i16_gemm, q4k_q8b32

        var op: edge_gemm_op {
            switch self {
            case .f32: EDGE_GEMM_OP_F32
            case .f16: EDGE_GEMM_OP_F16
            case .q8_f32: EDGE_GEMM_OP_Q8_F32
            case .q4_f32: EDGE_GEMM_OP_Q4_F32
            case .q3_f32: EDGE_GEMM_OP_Q3_F32
            case .q4k_f32: EDGE_GEMM_OP_Q4K_F32
            case .q3s_f32: EDGE_GEMM_OP_Q3S_F32
            case .q8_q8: EDGE_GEMM_OP_Q8_Q8
            case .q8_q8b32: EDGE_GEMM_OP_Q8_Q8B32
            case .q8_i16: EDGE_GEMM_OP_Q8_I16
            case .q4_i16: EDGE_GEMM_OP_Q4_I16
            case .q4_q8b32: EDGE_GEMM_OP_Q4_Q8B32
            case .q4_i16_gemm: EDGE_GEMM_OP_Q4_I16_GEMM
            case .q4k_i16: EDGE_GEMM_OP_Q4K_I16
            case .q4k_i16_gemm: EDGE_GEMM_OP_Q4K_I16_GEMM
            case .q4k_q8b32: EDGE_GEMM_OP_Q4K_Q8B32
            }
        }
    }

    /// The active SIMD level: "ref", "avx2", "avx512" or "neon".
    public let level: String
    /// Whether int8 x int8 products use VNNI instructions.
    public let vnni: Bool
    /// The GEMM mode in force.
    public let gemmMode: GEMMMode
    /// Kernel name per product (`Product.rawValue`) for one token (decoding), e.g. "avx2-dot-4x3", and
    /// of the sparse decoding product `bitmask_q8_i16` (pruned int8 files), e.g. "avx512-vbmi2-bitmask-i16".
    public let decode: [String: String]
    /// Kernel name per product for `batchTokens` tokens (prefill, perplexity windows, training).
    public let batch: [String: String]
    /// The token count `batch` is named for.
    public let batchTokens: Int

    /// The kernels in use now; `batchTokens` (> 0) picks the token count of `batch`.
    public static func current(batchTokens: Int = 64) -> KernelInfo {
        precondition(batchTokens > 0, "batchTokens must be positive")
        return KernelInfo(level: String(cString: edge_kernels_level_name(edge_kernels_level())),
                          vnni: edge_kernels_uses_vnni(), gemmMode: gemmMode,
                          decode: names(tokens: 1).merging(["bitmask_q8_i16": String(cString: edge_kernels_bitmask_q8_i16_name())]) { a, _ in a },
                          batch: names(tokens: batchTokens), batchTokens: batchTokens)
    }

    /// The active level's kernel for `product` with `tokens` tokens, e.g. "avx2-packed-6x16".
    public static func kernel(_ product: Product, tokens: Int) -> String {
        precondition(tokens >= 0, "tokens must not be negative")
        // Non-nil: the active level is always available and every Product is a known op.
        return String(cString: edge_kernels_gemm_name(EDGE_KERNELS_AUTO, product.op, tokens)!)
    }

    /// The kernel behind training's bfloat16 products (`edge_matmul_bf16`) at the active level, e.g.
    /// "avx512-bf16-packed-12x32" (vdpbf16ps) or "avx2-packed-6x16" (the f32 kernel on rounded operands).
    public static var bf16Kernel: String { String(cString: edge_kernels_bf16_name()) }

    /// The GEMM mode in force (process-wide).
    public static var gemmMode: GEMMMode { edge_kernels_gemm_mode() == EDGE_GEMM_DOT ? .dot : .auto }

    /// Sets the GEMM mode for every later product (process-wide; thread-safe, a product already
    /// running finishes in the mode it started with).
    public static func setGEMMMode(_ mode: GEMMMode) {
        _ = edge_kernels_set_gemm_mode(mode == .dot ? EDGE_GEMM_DOT : EDGE_GEMM_AUTO)
    }

    /// Makes `level` the active SIMD level for every later product (process-wide; call it before
    /// running a model). Returns false, changing nothing, when this CPU or build cannot run it.
    @discardableResult
    public static func use(_ level: Level) -> Bool { edge_kernels_force(level.cLevel) }

    /// Whether this CPU and build can run `level`.
    public static func available(_ level: Level) -> Bool { edge_kernels_available(level.cLevel) }

    /// This report as JSON (the `kernels` member of the tools' `--json` output).
    public var jsonValue: JSONValue {
        func names(_ d: [String: String]) -> JSONValue { .object(d.mapValues { .string($0) }) }
        return .object(["level": .string(level), "vnni": .bool(vnni), "gemm_mode": .string(gemmMode.rawValue),
                        "decode": names(decode), "batch": names(batch), "batch_tokens": .number(Double(batchTokens))])
    }

    private static func names(tokens: Int) -> [String: String] {
        Dictionary(uniqueKeysWithValues: Product.allCases.map { ($0.rawValue, kernel($0, tokens: tokens)) })
    }
}
