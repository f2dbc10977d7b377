import Dispatch
import EdgeFormat
import EdgeKernels

/// Where a tensor's values come from. The runtime computes straight from these bytes: an encoded
/// payload is never expanded to float32 as a whole (only single rows, e.g. embedding lookups).
public enum WeightSource: @unchecked Sendable {
    /// Float32 values, row-major, with their shape (a float checkpoint held in memory).
    case floats([Float], shape: [Int])
    /// An encoded payload held in memory (e.g. a tensor the compressor has just encoded).
    case encoded(EncodedTensor)
    /// Payload bytes owned by `owner` (typically an `EdgeFile` mapping), described by `entry`.
    /// The bytes stay valid as long as `owner` is alive; the weight keeps a reference to it.
    case mapped(UnsafeRawBufferPointer, entry: TensorEntry, owner: AnyObject)

    /// The payload of `entry` in `file` (inflated once if it is stored deflated).
    /// - Throws: as `EdgeFile.payload(of:)`.
    public static func file(_ file: EdgeFile, _ entry: TensorEntry) throws -> WeightSource {
        .mapped(try file.payload(of: entry), entry: entry, owner: file)
    }

    /// Dimensions, outermost first.
    public var shape: [Int] {
        switch self {
        case let .floats(_, shape): return shape
        case let .encoded(t): return t.shape
        case let .mapped(_, entry, _): return entry.shape
        }
    }

    /// The encoding of the bytes.
    public var encoding: Encoding {
        switch self {
        case .floats: return .f32
        case let .encoded(t): return t.encoding
        case let .mapped(_, entry, _): return entry.encoding
        }
    }

    /// Encoding parameters (q8/q4/q3/q4k).
    public var params: EncodingParams {
        switch self {
        case .floats: return EncodingParams()
        case let .encoded(t): return t.params
        case let .mapped(_, entry, _): return entry.params
        }
    }

    /// Number of stored values (required by the sparse encodings), if recorded.
    public var nnz: Int? {
        switch self {
        case .floats: return nil
        case let .encoded(t): return t.nnz
        case let .mapped(_, entry, _): return entry.nnz
        }
    }

    /// Calls `body` with the payload bytes (for `.floats`, the float32 values' bytes).
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case let .floats(values, _): return try values.withUnsafeBytes(body)
        case let .encoded(t): return try t.payload.withUnsafeBytes(body)
        case let .mapped(bytes, _, owner): return try withExtendedLifetime(owner) { try body(bytes) }
        }
    }

    /// Checks that the byte count matches the shape and encoding (and, for csr/bitmask, that the
    /// row pointers, columns and mask bits are consistent; for nm, the in-group indices); returns the
    /// payload layout, resolved once here (every encoding parameter applied; see `PayloadLayout`).
    /// - Throws: `RuntimeError.badTensor` naming `name` and both sizes or the broken rule.
    @discardableResult
    func checked(name: String, source: String) throws -> PayloadLayout {
        guard Checked.product(shape) != nil, shape.allSatisfy({ $0 >= 0 }) else {
            throw RuntimeError.badTensor(source: source, tensor: name, why: "shape \(shape) is invalid")
        }
        guard encoding.isImplemented else {
            throw RuntimeError.unsupportedEncoding(source: source, tensor: name, encoding: encoding.rawValue)
        }
        guard let layout = PayloadLayout(encoding: encoding, shape: shape, params: params, nnz: nnz) else {
            throw RuntimeError.badTensor(source: source, tensor: name,
                                         why: "shape \(shape) with encoding \(encoding.rawValue), params \(params) and nnz \(nnz.map(String.init) ?? "absent") is not valid")
        }
        let expected = layout.totalBytes
        let actual = withBytes { $0.count }
        guard actual == expected else {
            throw RuntimeError.badTensor(source: source, tensor: name, why: "has \(actual) payload bytes; shape \(shape) as \(encoding.rawValue) needs \(expected)")
        }
        if encoding.hasStructure,
           let why = withBytes({ payloadStructureProblem($0, encoding: encoding, shape: shape, params: params, nnz: nnz) }) {
            throw RuntimeError.badTensor(source: source, tensor: name, why: why)
        }
        // A NaN or Inf weight (or scale) would make every logit nan: refused at load, naming it.
        if let why = withBytes({ layout.nonFiniteProblem($0) }) {
            throw RuntimeError.badTensor(source: source, tensor: name, why: "holds a non-finite number: \(why)")
        }
        return layout
    }

    /// All values as float32 (used for the small 1-D tensors: norms and biases).
    /// - Precondition: the source passed `checked`.
    func floats() -> [Float] {
        if case let .floats(values, _) = self { return values }
        guard let layout = PayloadLayout(encoding: encoding, shape: shape, params: params, nnz: nnz) else {
            preconditionFailure("WeightSource.floats: shape \(shape) with params \(params) is not valid for \(encoding.rawValue)")
        }
        return withBytes { layout.decode($0) }
    }
}

/// What the activations of products with symmetric dense q8 weights are quantized to: a runtime
/// option that changes results, so it is passed explicitly (`EdgeModel.activations`, the `edge-run`
/// and `compress verify` flag `--activations`) and reported with them; no environment variable sets it.
public enum ActivationPrecision: String, CaseIterable, Codable, Sendable {
    /// f32 activations at every size: the weights' quantization is the only error.
    case f32
    /// int8 activations in blocks of 32, one scale each: for q8 weights at every token count, for q4
    /// and q4k weights when decoding (`edge_matmul_q4_q8b32` / `edge_matmul_q4k_q8b32`, the fastest
    /// 4-bit decoding); measurably less
    /// accurate (docs/performance.md).
    case q8
    /// int16 activations per block of 256 where the kernel is SIMD (`Linear.i16Accelerated` for q8
    /// weights and `Linear.i16Q4RowsAccelerated` for q4 and q4k decoding: AVX2, AVX-512, NEON;
    /// `Linear.i16Q4Accelerated` for q4 and q4k above that: AVX2, AVX-512; f32 otherwise): for q8, q4 and q4k weights at every token count (q4, q4k: the row kernel up to
    /// `Linear.q4I16MaxTokens` tokens, the packed integer GEMM above): faster than f32, within float
    /// noise of its accuracy (the default).
    case i16

    /// The precision used when none is asked for.
    public static let `default`: ActivationPrecision = .i16
}

/// What a model does at load with its sparse matrices of symmetric q8 values (bitmask, packed 2:4).
public enum SparseWeights: String, CaseIterable, Sendable {
    /// `keep` where the kernels decode sparse payloads faster than dense ones
    /// (`edge_kernels_sparse_decode_fast`: the AVX-512 VBMI2 level), else `dense`.
    case auto
    /// Multiply the stored bytes: the file's size in memory.
    case keep
    /// Dense q8 copies made at load (`Linear.denseQ8Copy`): the dense file's memory and speed, the
    /// same results under int16 activations (`ActivationPrecision.i16`, the default; under `.f32` the
    /// last bits may differ, and under `.q8` the copies multiply int8 activations as a dense file's
    /// weights do, where sparse payloads keep f32 ones). Where the file is mapped, the sparse
    /// payloads' pages are let go.
    case dense

    /// `.keep` or `.dense` for the active kernel level.
    public var resolved: SparseWeights {
        self == .auto ? (edge_kernels_sparse_decode_fast() ? .keep : .dense) : self
    }
}

extension PayloadLayout {
    /// Whether a matrix so stored has a dense q8 copy (`Linear.denseQ8Copy`): a bitmask or packed 2:4
    /// payload of symmetric q8 values.
    var hasDenseQ8Copy: Bool {
        switch self {
        case let .sparse(l): return l.encoding == .bitmask && l.valueEncoding == .q8 && l.symmetric
        case let .nm(l): return l.n == 2 && l.m == 4 && l.valueEncoding == .q8 && l.symmetric
        default: return false
        }
    }
}

/// A weight matrix W [rows = out features, cols = in features] in any encoding, multiplied straight
/// from its stored bytes by the EdgeKernels matrix products (f32, f16, q8 sym/asym, q4 sym/asym, q3 sym/asym, q4k
/// (int16 activations under `.i16` as q4, `edge_matmul_q4k_i16` / `edge_gemm_q4k_i16`; int8 blocks of 32 when
/// decoding under `.q8`, `edge_matmul_q4k_q8b32`; else f32 activations, `edge_matmul_q4k_f32`), and
/// csr / bitmask / packed nm with f32, f16 or q8 values through the sparse kernels; nm is never
/// densified: its kernels read the packed indices and values directly). The bytes are read through
/// the tensor's `PayloadLayout`, resolved once at init.
///
/// `matmul` splits the output rows across threads: `threads` chunks of rows run on the persistent
/// worker pool (`WorkerPools`); products too small to gain from threads run inline.
public struct Linear: @unchecked Sendable {
    /// Tensor name, for messages.
    public let name: String
    /// Output features.
    public let rows: Int
    /// Input features.
    public let cols: Int
    /// How the bytes encode the values.
    public let encoding: Encoding
    /// Encoding parameters.
    public let params: EncodingParams
    /// The payload layout, every parameter resolved.
    public let layout: PayloadLayout
    private let source: WeightSource

    /// Wraps a 2-D tensor.
    /// - Parameters:
    ///   - name: tensor name (for messages).
    ///   - source: the weight's bytes.
    ///   - origin: file or checkpoint the tensor comes from (for messages).
    /// - Throws: `RuntimeError.badTensor` if the tensor is not 2-D or its bytes do not match its
    ///   shape, `.unsupportedEncoding` for an encoding this runtime cannot compute with.
    public init(name: String, source: WeightSource, origin: String = "") throws {
        let layout = try source.checked(name: name, source: origin)
        guard source.shape.count == 2 else {
            throw RuntimeError.badTensor(source: origin, tensor: name, why: "has shape \(source.shape); a weight matrix needs 2 dimensions")
        }
        self.name = name
        rows = source.shape[0]
        cols = source.shape[1]
        encoding = source.encoding
        params = source.params
        self.layout = layout
        self.source = source
    }

    /// Products with fewer multiply-adds than this run on the calling thread.
    static let parallelThreshold = 1 << 18

    /// Y[t, r] = dot(W[r, :], X[t, :]) for t < `tokens`, every r.
    /// - Parameters:
    ///   - x: X, [tokens, cols] row-major.
    ///   - y: Y, [tokens, rows] row-major (fully overwritten).
    ///   - threads: how many row chunks to compute concurrently (at least 1).
    ///   - activations: what symmetric dense q8 weights, q4 and q4k weights multiply (other encodings ignore it).
    ///
    /// Symmetric dense q8 weights multiply, by `activations`:
    /// - `.i16` (the default): on AVX2 / AVX-512 / NEON (`Linear.i16Accelerated`), int16 activations: X is
    ///   quantized once per call per (token, block of 256) (`edge_quantize_rows_i16`) and every row
    ///   chunk runs `edge_matmul_q8_i16` (vpmaddwd on x86, widening multiply-adds on NEON: weight rows
    ///   streamed once for up to 4 tokens; packed panels for more on x86, blocks of 16 rows on NEON),
    ///   at every token count (`Linear.i16MinTokens` is 1).
    /// q4 weights (symmetric or not), for up to `Linear.q4I16MaxTokens` tokens (decoding): under `.i16`,
    /// with groups of 32, 64, 128 or 256, `edge_matmul_q4_i16` against int16 activations (AVX2 /
    /// AVX-512 / NEON: `Linear.i16Q4RowsAccelerated`); under `.q8`, with groups of 8, 16, 32, 64, 128 or a multiple of 128,
    /// `edge_matmul_q4_q8b32` against int8 activations in blocks of 32 (vpdpbusd / vpmaddubsw; every
    /// level). More tokens under `.i16` (those groups, AVX2 / AVX-512): `edge_gemm_q4_i16`, the packed
    /// int16 GEMM; under `.q8` and `.f32`, and for other groups, f32 activations. Bitmask payloads
    /// of symmetric q8 values (`edge_spmm_bitmask_q8_i16`) and packed 2:4 payloads of symmetric q8
    /// values (`edge_spmm_nm24_q8_i16`) run against int16 activations under `.i16` at every token
    /// count, as dense symmetric q8 does: exactly the dense q8 x int16 product of the same weights
    /// (rows streamed once up to 4 tokens; tiles of rows expanded to dense int8 for the packed
    /// GEMM above that). q4k weights under `.i16` (AVX2 / AVX-512, groups of 32, 64, 128 or 256) run as
    /// q4 does: `edge_matmul_q4k_i16` up to `Linear.q4I16MaxTokens` tokens, `edge_gemm_q4k_i16` above,
    /// against the same int16 activations; under `.q8`, up to `Linear.q4I16MaxTokens` tokens (decoding)
    /// with the groups `edge_matmul_q4_q8b32` takes, `edge_matmul_q4k_q8b32` against int8 activations in
    /// blocks of 32 (as q4; every level); otherwise (`.f32`, `.q8` for more tokens, other groups) f32
    /// activations (`edge_matmul_q4k_f32`, the shared float GEMM). q3 weights multiply f32 activations (`edge_matmul_q3_f32`) at every token count,
    /// whatever `activations` says.
    /// - `.f32`: f32 activations (`edge_matmul_q8_f32`) at every size.
    /// - `.q8`: int8 activations in blocks of 32
    ///   (`edge_quantize_row_q8_b32`, `edge_matmul_q8_q8b32`) at every size: less accurate (for q4
    ///   and q4k weights when decoding: `edge_matmul_q4_q8b32` / `edge_matmul_q4k_q8b32`, faster than
    ///   `.i16`, see above).
    /// See docs/performance.md for the speed and perplexity of each.
    ///   - only: compute only these output rows, on the calling thread (`threads` is then ignored);
    ///     the other rows of Y are left as they are. `Linear.matmul(_:_:tokens:threads:activations:)`
    ///     uses it to run several products in one parallel region.
    ///   - scratch: memory the call may use for its int16 activations instead of allocating them,
    ///     where it is large enough; its contents are overwritten (calls that run concurrently each
    ///     need their own). The forward pass lends its buffers that are free at each product (the
    ///     int16 activations of a 512-token piece of SmolLM2 are 0.6 MB, the down projection's 1.6 MB),
    ///     so that they add nothing to its peak memory.
    public func matmul(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int,
                       activations mode: ActivationPrecision = .default, only: Range<Int>? = nil,
                       scratch: UnsafeMutableRawBufferPointer? = nil) {
        guard tokens > 0, rows > 0 else { return }
        source.withBytes { bytes in
            let base = bytes.baseAddress!, cols = self.cols, rows = self.rows
            if tokens <= Linear.q4I16MaxTokens, case let .q4(l) = layout {
                // Decoding with q4 weights: integer activations, the nibbles streamed once per 4 tokens.
                let zero = l.symmetric ? nil : (base + l.zeroOffset).assumingMemoryBound(to: UInt8.self)
                let scale = (base + l.scaleOffset).assumingMemoryBound(to: UInt16.self)
                let wq = base.assumingMemoryBound(to: UInt8.self), group = l.groupSize
                if mode == .q8, edge_q4_q8_supported(group) {  // int8 blocks of 32 (vpdpbusd), every level
                    runQ8B32(x, tokens: tokens, threads: threads, only: only) { xq, xs, r0, r1 in
                        edge_matmul_q4_q8b32(wq, scale, zero, group, xq, xs, y, tokens, rows, cols, r0, r1)
                    }
                    return
                }
                if mode == .i16, Linear.i16Q4RowsAccelerated, edge_q4_i16_supported(group) {  // int16 per 256 (vpmaddwd; NEON smlal)
                    runI16(x, tokens: tokens, threads: threads, only: only, scratch: scratch) { xq, xs, r0, r1 in
                        edge_matmul_q4_i16(wq, scale, zero, group, xq, xs, y, tokens, rows, cols, r0, r1)
                    }
                    return
                }
            }
            if mode == .i16, Linear.i16Q4Accelerated, case let .q4(l) = layout, edge_q4_i16_supported(l.groupSize) {
                // Many tokens with q4 weights: int16 activations through the packed integer GEMM (edge_gemm_q4_i16).
                let zero = l.symmetric ? nil : (base + l.zeroOffset).assumingMemoryBound(to: UInt8.self)
                let scale = (base + l.scaleOffset).assumingMemoryBound(to: UInt16.self)
                let wq = base.assumingMemoryBound(to: UInt8.self), group = l.groupSize
                runI16(x, tokens: tokens, threads: threads, only: only, scratch: scratch) { xq, xs, r0, r1 in
                    edge_gemm_q4_i16(wq, scale, zero, group, xq, xs, y, tokens, rows, cols, r0, r1)
                }
                return
            }
            if case let .q4k(l) = layout {
                let wq = base.assumingMemoryBound(to: UInt8.self)
                let sub = (base + l.subOffset).assumingMemoryBound(to: UInt8.self)
                let sup = (base + l.superOffset).assumingMemoryBound(to: UInt16.self)
                let group = l.groupSize, bits = l.subBits
                if tokens <= Linear.q4I16MaxTokens, mode == .q8, edge_q4k_q8_supported(group, bits) {
                    // Decoding under .q8: int8 blocks of 32 (vpdpbusd), every level, as q4.
                    runQ8B32(x, tokens: tokens, threads: threads, only: only) { xq, xs, r0, r1 in
                        edge_matmul_q4k_q8b32(wq, sub, sup, group, bits, xq, xs, y, tokens, rows, cols, r0, r1)
                    }
                    return
                }
                let rowKernel = tokens <= Linear.q4I16MaxTokens
                if mode == .i16, rowKernel ? Linear.i16Q4RowsAccelerated : Linear.i16Q4Accelerated,
                   edge_q4k_i16_supported(group, bits) {
                    // int16 activations, as q4 (the same token threshold and quantization): the row kernel
                    // when decoding, the packed integer GEMM for more tokens.
                    let kernel = rowKernel ? edge_matmul_q4k_i16 : edge_gemm_q4k_i16
                    runI16(x, tokens: tokens, threads: threads, only: only, scratch: scratch) { xq, xs, r0, r1 in
                        kernel(wq, sub, sup, group, bits, xq, xs, y, tokens, rows, cols, r0, r1)
                    }
                    return
                }
            }
            // Sparse symmetric q8 (bitmask, packed 2:4) under .i16, at every token count: exactly the
            // dense q8 x int16 product of the same weights (rows streamed once for few tokens; for
            // more, tiles expanded to dense int8 through the packed GEMM).
            let sparseI16 = mode == .i16 && Linear.i16Accelerated
            if sparseI16, case let .sparse(l) = layout, l.encoding == .bitmask, l.valueEncoding == .q8, l.symmetric {
                let mask = base.assumingMemoryBound(to: UInt8.self)
                let rowPtr = (base + l.rowPointerOffset).assumingMemoryBound(to: UInt32.self)
                let values = (base + l.valueOffset).assumingMemoryBound(to: Int8.self)
                let scale = (base + l.scaleOffset).assumingMemoryBound(to: Float.self)
                runI16(x, tokens: tokens, threads: threads, only: only, scratch: scratch) { xq, xs, r0, r1 in
                    edge_spmm_bitmask_q8_i16(mask, rowPtr, values, scale, xq, xs, y, tokens, rows, cols, r0, r1)
                }
                return
            }
            if sparseI16, case let .nm(l) = layout, l.n == 2, l.m == 4, l.valueEncoding == .q8, l.symmetric {
                let idx = base.assumingMemoryBound(to: UInt8.self)
                let values = (base + l.valueOffset).assumingMemoryBound(to: Int8.self)
                let scale = (base + l.scaleOffset).assumingMemoryBound(to: Float.self)
                runI16(x, tokens: tokens, threads: threads, only: only, scratch: scratch) { xq, xs, r0, r1 in
                    edge_spmm_nm24_q8_i16(idx, values, scale, xq, xs, y, tokens, rows, cols, r0, r1)
                }
                return
            }
            guard case let .q8(l) = layout, l.symmetric,
                  mode == .q8 || (mode == .i16 && tokens >= Linear.i16MinTokens && Linear.i16Accelerated) else {
                splitRows(tokens: tokens, threads: threads, only: only) { r0, r1 in run(bytes, x, y, tokens, r0, r1) }
                return
            }
            let wq = base.assumingMemoryBound(to: Int8.self)
            let ws = (base + l.scaleOffset).assumingMemoryBound(to: Float.self)
            if mode == .i16 {
                runI16(x, tokens: tokens, threads: threads, only: only, scratch: scratch) { xq, xs, r0, r1 in
                    edge_matmul_q8_i16(wq, ws, xq, xs, y, tokens, rows, cols, r0, r1)
                }
                return
            }
            runQ8B32(x, tokens: tokens, threads: threads, only: only) { xq, xs, r0, r1 in
                edge_matmul_q8_q8b32(wq, ws, xq, xs, y, tokens, rows, cols, r0, r1)
            }
        }
    }

    /// Quantizes X [tokens, cols] to int16 once (`edge_quantize_rows_i16`: values and per-block
    /// scales) and runs `body(xq, xscale, r0, r1)` over row chunks (`splitRows`).
    private func runI16(_ x: UnsafePointer<Float>, tokens: Int, threads: Int, only: Range<Int>?,
                        scratch: UnsafeMutableRawBufferPointer? = nil,
                        _ body: (UnsafePointer<Int16>, UnsafePointer<Float>, Int, Int) -> Void) {
        let ld = edge_i16_stride(cols), blocks = (cols + Int(EDGE_I16_BLOCK) - 1) / Int(EDGE_I16_BLOCK)
        // In `scratch` where it holds both (each part on 64 bytes, as an allocation of its own would be
        // at least on 16), else allocated.
        let qBytes = (tokens * ld * 2 + 63) / 64 * 64
        var lent: (UnsafeMutablePointer<Int16>, UnsafeMutablePointer<Float>)?
        if let scratch, let p = scratch.baseAddress {
            let skip = (64 - Int(bitPattern: p) % 64) % 64
            if scratch.count >= skip + qBytes + tokens * blocks * 4 {
                lent = ((p + skip).bindMemory(to: Int16.self, capacity: tokens * ld),
                        (p + skip + qBytes).bindMemory(to: Float.self, capacity: tokens * blocks))
            }
        }
        let xq = lent?.0 ?? UnsafeMutablePointer<Int16>.allocate(capacity: tokens * ld)
        let xs = lent?.1 ?? UnsafeMutablePointer<Float>.allocate(capacity: tokens * blocks)
        defer {
            if lent == nil {
                xq.deallocate()
                xs.deallocate()
            }
        }
        edge_quantize_rows_i16(x, xq, xs, tokens, cols)
        splitRows(tokens: tokens, threads: threads, only: only) { r0, r1 in body(xq, xs, r0, r1) }
    }

    /// Quantizes X [tokens, cols] to int8 in blocks of 32 once (`edge_quantize_row_q8_b32`) and runs
    /// `body(xq, xscale, r0, r1)` over row chunks (`splitRows`).
    private func runQ8B32(_ x: UnsafePointer<Float>, tokens: Int, threads: Int, only: Range<Int>?,
                          _ body: (UnsafePointer<Int8>, UnsafePointer<Float>, Int, Int) -> Void) {
        let blocks = (cols + Int(EDGE_Q8_BLOCK) - 1) / Int(EDGE_Q8_BLOCK)
        let xq = UnsafeMutablePointer<Int8>.allocate(capacity: tokens * cols)
        let xs = UnsafeMutablePointer<Float>.allocate(capacity: tokens * blocks)
        defer {
            xq.deallocate()
            xs.deallocate()
        }
        for t in 0 ..< tokens { edge_quantize_row_q8_b32(x + t * cols, xq + t * cols, xs + t * blocks, cols) }
        splitRows(tokens: tokens, threads: threads, only: only) { r0, r1 in body(xq, xs, r0, r1) }
    }

    /// Most tokens for which q4 weights run against integer activations (`.i16`: `edge_matmul_q4_i16`,
    /// `.q8`: `edge_matmul_q4_q8b32`, q4k's `edge_matmul_q4k_q8b32`; decoding); above it `.i16` runs the packed `edge_gemm_q4_i16`
    /// and `.q8` the f32 GEMM (faster there than its row kernel).
    public static let q4I16MaxTokens = 4

    /// Fewest tokens for which `.i16` quantizes the activations (fewer would take the f32 path): 1
    /// since the kernel streams weight rows for few tokens (decoding), so every size runs it.
    public static let i16MinTokens = 1

    /// Whether the active kernel level has a SIMD `edge_matmul_q8_i16` (AVX2, AVX-512, NEON): there
    /// dense and sparse symmetric q8 weights take `.i16`; on the scalar reference `.i16` keeps the f32
    /// path. (Sparse q8 on NEON has no SIMD row kernel: `--sparse auto` makes dense copies there.)
    public static var i16Accelerated: Bool {
        let level = edge_kernels_level()
        return level == EDGE_KERNELS_AVX2 || level == EDGE_KERNELS_AVX512 || level == EDGE_KERNELS_NEON
    }

    /// Whether the active kernel level has the packed int16-activation GEMMs for q4 and q4k weights
    /// (`edge_gemm_q4_i16`, `edge_gemm_q4k_i16`: AVX2, AVX-512); elsewhere (the scalar reference,
    /// NEON) q4 and q4k under `.i16` take the f32 path for more than `q4I16MaxTokens` tokens.
    public static var i16Q4Accelerated: Bool {
        let level = edge_kernels_level()
        return level == EDGE_KERNELS_AVX2 || level == EDGE_KERNELS_AVX512
    }

    /// Whether the active kernel level has SIMD int16-activation row kernels for q4 and q4k weights
    /// (`edge_matmul_q4_i16`, `edge_matmul_q4k_i16`, up to `q4I16MaxTokens` tokens): the levels of
    /// `i16Accelerated`; on the scalar reference q4 and q4k under `.i16` keep the f32 path when decoding too.
    public static var i16Q4RowsAccelerated: Bool { i16Accelerated }

    /// Calls `body(r0, r1)` for chunks of the output rows covering 0..<rows: one chunk on the calling
    /// thread for small products, else up to `threads` chunks run concurrently.
    private func splitRows(tokens: Int, threads: Int, only: Range<Int>?, _ body: (Int, Int) -> Void) {
        if let only {
            if !only.isEmpty { body(only.lowerBound, only.upperBound) }
            return
        }
        let rows = self.rows
        let work = rows.multipliedReportingOverflow(by: cols).partialValue &* tokens
        let chunks = work < Linear.parallelThreshold ? 1 : max(1, min(threads, rows))
        if chunks == 1 {
            body(0, rows)
            return
        }
        // Row chunks in multiples of 8 so SIMD kernels see whole blocks.
        let per = ((rows + chunks - 1) / chunks + 7) & ~7
        parallelFor(chunks) { c in
            let r0 = min(rows, c * per), r1 = min(rows, r0 + per)
            if r0 < r1 { body(r0, r1) }
        }
    }

    /// Several products of the same input X [tokens, cols] (a block's q, k and v; gate and up), each
    /// into its own Y, in one parallel region: chunk c of `threads` computes its share of every
    /// product's rows (multiples of 8), so a decoding step waits on the threads once per group
    /// instead of once per product. The same outputs, bit for bit, as separate `matmul` calls (every
    /// kernel computes each row on its own).
    /// - Parameter scratch: as in `matmul(_:tokens:into:threads:activations:only:scratch:)`, shared
    ///   out among the chunks (each chunk's products, one after the other, use its part).
    public static func matmul(_ products: [(Linear, UnsafeMutablePointer<Float>)], _ x: UnsafePointer<Float>, tokens: Int,
                              threads: Int, activations: ActivationPrecision = .default,
                              scratch: UnsafeMutableRawBufferPointer? = nil) {
        let work = products.reduce(0) { $0 &+ $1.0.rows &* $1.0.cols } &* tokens
        let chunks = work < parallelThreshold ? 1 : max(1, threads)
        if chunks == 1 || products.count == 1 {
            for (l, y) in products { l.matmul(x, tokens: tokens, into: y, threads: threads, activations: activations, scratch: scratch) }
            return
        }
        let part = (scratch?.count ?? 0) / chunks / 64 * 64
        parallelFor(chunks) { c in
            let mine = scratch.flatMap { s in part > 0 ? UnsafeMutableRawBufferPointer(rebasing: s[c * part ..< (c + 1) * part]) : nil }
            for (l, y) in products {
                let per = ((l.rows + chunks - 1) / chunks + 7) & ~7
                let r0 = min(l.rows, c * per), r1 = min(l.rows, r0 + per)
                if r0 < r1 { l.matmul(x, tokens: tokens, into: y, threads: 1, activations: activations, only: r0 ..< r1, scratch: mine) }
            }
        }
    }

    /// Returns Y = X W^T for X [tokens, cols]; Y is [tokens, rows].
    /// - Precondition: `x.count == tokens * cols`.
    public func matmul(_ x: [Float], tokens: Int, threads: Int = EdgeModel.defaultThreads,
                       activations: ActivationPrecision = .default) -> [Float] {
        precondition(x.count == tokens * cols, "Linear.matmul: \(name) needs \(tokens) x \(cols) inputs, got \(x.count)")
        var y = [Float](repeating: 0, count: tokens * rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                matmul(xp.baseAddress!, tokens: tokens, into: yp.baseAddress!, threads: threads, activations: activations)
            }
        }
        return y
    }

    /// Bytes of a dense symmetric q8 copy (`denseQ8Copy`) of this matrix: for a bitmask or packed 2:4
    /// matrix of symmetric q8 values, `Q8Layout.totalBytes`; nil for every other layout.
    public var denseQ8CopyBytes: Int? {
        layout.hasDenseQ8Copy ? Q8Layout(rows: rows, cols: cols, symmetric: true).totalBytes : nil
    }

    /// A dense symmetric q8 copy of a bitmask or packed 2:4 matrix of symmetric q8 values, written to
    /// `out` (`denseQ8CopyBytes` long; `owner` keeps it alive): the same int8 values with zeros where
    /// nothing is stored, the same row scales; nil for every other layout. Under int16 activations
    /// (the default) its products are bit-identical to this matrix's (both kernels sum the same
    /// integers exactly per block and scale them alike; see `SparseWeights.dense` for the other
    /// activations); it takes rows x cols bytes where this takes about half plus its mask.
    /// `SparseWeights.dense` makes these at load where sparse decoding is the slower kernel.
    public func denseQ8Copy(into out: UnsafeMutableRawBufferPointer, owner: AnyObject) -> Linear? {
        guard let total = denseQ8CopyBytes, out.count >= total else { return nil }
        let rows = self.rows, cols = self.cols
        let dense = Q8Layout(rows: rows, cols: cols, symmetric: true)
        let o = out.baseAddress!
        source.withBytes { bytes in
            let base = bytes.baseAddress!
            let q = o.assumingMemoryBound(to: Int8.self)
            switch layout {
            case let .sparse(l):
                edge_bitmask_q8_to_dense(base.assumingMemoryBound(to: UInt8.self),
                                         (base + l.rowPointerOffset).assumingMemoryBound(to: UInt32.self),
                                         (base + l.valueOffset).assumingMemoryBound(to: Int8.self), rows, cols, q)
                (o + dense.scaleOffset).copyMemory(from: base + l.scaleOffset, byteCount: rows * 4)
            case let .nm(l):
                edge_nm24_q8_to_dense(base.assumingMemoryBound(to: UInt8.self),
                                      (base + l.valueOffset).assumingMemoryBound(to: Int8.self), rows, cols, q)
                (o + dense.scaleOffset).copyMemory(from: base + l.scaleOffset, byteCount: rows * 4)
            default:
                preconditionFailure("denseQ8CopyBytes admits bitmask and 2:4 layouts only")
            }
        }
        (o + rows * cols).initializeMemory(as: UInt8.self, repeating: 0, count: dense.scaleOffset - rows * cols)  // padding
        let entry = TensorEntry(name: name, shape: [rows, cols], encoding: .q8, params: .init(symmetric: true), offset: 0,
                                length: total, crc32: 0, compression: .none)
        return try? Linear(name: name, source: .mapped(UnsafeRawBufferPointer(rebasing: out[0 ..< total]), entry: entry, owner: owner))
    }

    /// `denseQ8Copy(into:owner:)` in memory of its own.
    public func denseQ8Copy() -> Linear? {
        guard let total = denseQ8CopyBytes, let buffer = AnonymousMemory(bytes: total) else { return nil }
        return denseQ8Copy(into: buffer.bytes, owner: buffer)
    }

    /// Writes row `r` of W as float32 to `out` (cols values), decoding only that row.
    /// - Precondition: `0 <= r < rows`.
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "Linear.row: \(r) is outside 0..<\(rows) of \(name)")
        source.withBytes { layout.decodeRow(r, $0, into: out) }
    }

    /// One kernel call for rows [r0, r1).
    private func run(_ p: UnsafeRawBufferPointer, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                     _ T: Int, _ r0: Int, _ r1: Int) {
        let base = p.baseAddress!
        switch layout {
        case .f32:
            edge_matmul_f32(base.assumingMemoryBound(to: Float.self), x, y, T, rows, cols, r0, r1)
        case .f16:
            edge_matmul_f16(base.assumingMemoryBound(to: UInt16.self), x, y, T, rows, cols, r0, r1)
        case let .q8(l):
            let zero = l.symmetric ? nil : (base + l.zeroOffset).assumingMemoryBound(to: UInt8.self)
            edge_matmul_q8_f32(base.assumingMemoryBound(to: Int8.self), (base + l.scaleOffset).assumingMemoryBound(to: Float.self),
                               zero, x, y, T, rows, cols, r0, r1)
        case let .q4(l):
            let zero = l.symmetric ? nil : (base + l.zeroOffset).assumingMemoryBound(to: UInt8.self)
            edge_matmul_q4_f32(base.assumingMemoryBound(to: UInt8.self), (base + l.scaleOffset).assumingMemoryBound(to: UInt16.self),
                               zero, l.groupSize, x, y, T, rows, cols, r0, r1)
        case let .q3(l):
            let zero = l.symmetric ? nil : (base + l.zeroOffset).assumingMemoryBound(to: UInt8.self)
            edge_matmul_q3_f32(base.assumingMemoryBound(to: UInt8.self), (base + l.scaleOffset).assumingMemoryBound(to: UInt16.self),
                               zero, l.groupSize, x, y, T, rows, cols, r0, r1)
        case let .q4k(l):
            edge_matmul_q4k_f32(base.assumingMemoryBound(to: UInt8.self), (base + l.subOffset).assumingMemoryBound(to: UInt8.self),
                                (base + l.superOffset).assumingMemoryBound(to: UInt16.self), l.groupSize, l.subBits,
                                x, y, T, rows, cols, r0, r1)
        case let .q3s(l):
            edge_matmul_q3s_f32(base.assumingMemoryBound(to: UInt8.self), (base + l.subOffset).assumingMemoryBound(to: UInt8.self),
                                (base + l.superOffset).assumingMemoryBound(to: UInt16.self), l.groupSize, l.subBits,
                                x, y, T, rows, cols, r0, r1)
        case let .sparse(l):
            let rowPtr = (base + l.rowPointerOffset).assumingMemoryBound(to: UInt32.self)
            let values = base + l.valueOffset
            let bitmask = l.encoding == .bitmask
            if l.valueEncoding == .q8 {
                let scale = (base + l.scaleOffset).assumingMemoryBound(to: Float.self)
                let zero = l.symmetric ? nil : (base + l.zeroOffset).assumingMemoryBound(to: UInt8.self)
                let q = values.assumingMemoryBound(to: Int8.self)
                if bitmask {
                    edge_spmm_bitmask_q8_f32(base.assumingMemoryBound(to: UInt8.self), rowPtr, q, scale, zero, x, y, T, rows, cols, r0, r1)
                } else {
                    edge_spmm_csr_q8_f32(rowPtr, base + l.indexOffset, l.indexWidth, q, scale, zero, x, y, T, rows, cols, r0, r1)
                }
            } else if l.valueEncoding == .f16 {
                let v = values.assumingMemoryBound(to: UInt16.self)
                if bitmask {
                    edge_spmm_bitmask_f16(base.assumingMemoryBound(to: UInt8.self), rowPtr, v, x, y, T, rows, cols, r0, r1)
                } else {
                    edge_spmm_csr_f16(rowPtr, base + l.indexOffset, l.indexWidth, v, x, y, T, rows, cols, r0, r1)
                }
            } else {
                let v = values.assumingMemoryBound(to: Float.self)
                if bitmask {
                    edge_spmm_bitmask_f32(base.assumingMemoryBound(to: UInt8.self), rowPtr, v, x, y, T, rows, cols, r0, r1)
                } else {
                    edge_spmm_csr_f32(rowPtr, base + l.indexOffset, l.indexWidth, v, x, y, T, rows, cols, r0, r1)
                }
            }
        case let .nm(l):
            let idx = base.assumingMemoryBound(to: UInt8.self)
            let values = base + l.valueOffset
            switch l.valueEncoding {
            case .q8:
                let scale = (base + l.scaleOffset).assumingMemoryBound(to: Float.self)
                let zero = l.symmetric ? nil : (base + l.zeroOffset).assumingMemoryBound(to: UInt8.self)
                edge_spmm_nm_q8_f32(idx, values.assumingMemoryBound(to: Int8.self), scale, zero, l.n, l.m, x, y, T, rows, cols, r0, r1)
            case .f16:
                edge_spmm_nm_f16(idx, values.assumingMemoryBound(to: UInt16.self), l.n, l.m, x, y, T, rows, cols, r0, r1)
            default:
                edge_spmm_nm_f32(idx, values.assumingMemoryBound(to: Float.self), l.n, l.m, x, y, T, rows, cols, r0, r1)
            }
        }
    }
}
