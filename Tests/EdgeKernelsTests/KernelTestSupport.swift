import EdgeKernels
import XCTest

/// Deterministic xorshift64 generator, so a failing case reproduces.
struct TestRNG {
    private var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// Uniform in [lo, hi).
    mutating func float(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }

    /// Uniform in the closed range.
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] { (0 ..< n).map { _ in float(lo, hi) } }
}

/// The shapes every kernel is swept over (odd lengths exercise the SIMD tails).
enum Sweep {
    static let cols = [1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 200, 257]
    static let rows = [1, 3, 8, 13]
    static let tokens = [1, 2, 3, 5, 9]

    /// The whole range, plus an inner one (r0 > 0, r1 < rows) where there is room.
    static func rowRanges(_ rows: Int) -> [(Int, Int)] { rows >= 3 ? [(0, rows), (1, rows - 1)] : [(0, rows)] }
}

/// Named tolerances.
enum Tolerance {
    /// Float GEMMs (f32, f16, q8 x f32, q4 x f32): |y - y_ref| <= gemm * sum_k |w_k x_k|; both sides
    /// accumulate in float, in different orders.
    static let gemm = 1e-5
    /// int8 x int8: the integer sums are exact and the scaling identical, so results are bit-identical.
    static let q8q8: Float = 0
    /// Element-wise kernels of a SIMD level vs the reference: relative, with an absolute floor of the same size.
    static let elementwise: Float = 2e-6
    /// Reference kernels vs a double-precision Swift computation: relative, with the same absolute floor.
    static let math: Float = 2e-6
}

/// The levels the tests sweep; each runs only where `edge_kernels_force` accepts it.
let allKernelLevels = [EDGE_KERNELS_REF, EDGE_KERNELS_AVX2, EDGE_KERNELS_AVX512, EDGE_KERNELS_NEON]

func levelName(_ level: edge_kernel_level) -> String { String(cString: edge_kernels_level_name(level)) }

/// Runs `body` once per level this machine can run, with that level forced, then restores the
/// automatic choice. Returns the names of the levels it ran.
@discardableResult
func forEachKernelLevel(_ body: (String) throws -> Void) rethrows -> [String] {
    defer { _ = edge_kernels_force(EDGE_KERNELS_AUTO) }
    var ran: [String] = []
    for level in allKernelLevels where edge_kernels_force(level) {
        ran.append(levelName(level))
        try body(levelName(level))
    }
    return ran
}

/// forEachKernelLevel, then, where the CPU runs the AVX-512 level's VNNI integer kernels, that level
/// once more with its AVX-512BW ones ("avx512-bw", edge_kernels_set_vnni), so both forms of the
/// integer products are checked on one machine. Returns the names it ran.
@discardableResult
func forEachIntegerKernelForm(_ body: (String) throws -> Void) rethrows -> [String] {
    var ran = try forEachKernelLevel(body)
    defer { _ = edge_kernels_force(EDGE_KERNELS_AUTO) }
    if edge_kernels_force(EDGE_KERNELS_AVX512) && edge_kernels_uses_vnni() && edge_kernels_set_vnni(false) {
        ran.append("avx512-bw")
        try body("avx512-bw")
    }
    return ran
}

/// Memory whose first element sits one element past a 64-byte boundary, so kernels see pointers
/// that are not vector-aligned.
final class Misaligned<T> {
    private let raw: UnsafeMutableRawPointer
    let pointer: UnsafeMutablePointer<T>
    let count: Int

    init(_ values: [T]) {
        count = values.count
        raw = UnsafeMutableRawPointer.allocate(byteCount: (values.count + 1) * MemoryLayout<T>.stride, alignment: 64)
        pointer = (raw + MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: max(values.count, 1))
        pointer.initialize(from: values, count: values.count)
    }

    convenience init(repeating value: T, count: Int) { self.init([T](repeating: value, count: count)) }

    deinit { raw.deallocate() }

    var array: [T] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// binary16 bits of the nearest half to `x`.
func f16Bits(_ x: Float) -> UInt16 { Float16(x).bitPattern }
/// The value of binary16 bits.
func f16Value(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

/// The f32 weights of a q4 payload's parts: nibbles (two per byte, low first, rows of ceil(cols/2)
/// bytes), binary16 group scales and zero points ([rows, groups]; nil: 8), for the double product.
func dequantizedQ4(_ nib: [UInt8], scales: [UInt16], zeros: [UInt8]?, rows: Int, cols: Int, group: Int) -> [Float] {
    let groups = (cols + group - 1) / group, rowBytes = (cols + 1) / 2
    var w = [Float](repeating: 0, count: rows * cols)
    for r in 0 ..< rows {
        for k in 0 ..< cols {
            let b = nib[r * rowBytes + k / 2], u = Int(k % 2 == 0 ? b & 15 : b >> 4), gi = r * groups + k / group
            w[r * cols + k] = edge_f16_to_f32(scales[gi]) * Float(u - Int(zeros?[gi] ?? 8))
        }
    }
    return w
}

/// Exact Y[t, r] = sum_k W[r, k] X[t, k] in double, and the error scale sum_k |W[r, k] X[t, k]|.
func denseProduct(_ w: [Float], _ x: [Float], T: Int, rows: Int, cols: Int) -> (value: [Double], scale: [Double]) {
    var value = [Double](repeating: 0, count: T * rows), scale = value
    for t in 0 ..< T {
        for r in 0 ..< rows {
            var s = 0.0, a = 0.0
            for k in 0 ..< cols {
                let p = Double(w[r * cols + k]) * Double(x[t * cols + k])
                s += p
                a += abs(p)
            }
            value[t * rows + r] = s
            scale[t * rows + r] = a
        }
    }
    return (value, scale)
}

/// Runs a GEMM (dispatched) and its reference into sentinel-filled outputs and checks: the reference
/// against the dense double product, the dispatched one against the reference (within
/// `tolerance * scale`, or bit-identical when tolerance is 0), and that neither wrote outside [r0, r1).
func checkGEMM(_ what: String, level: String, T: Int, rows: Int, cols: Int, r0: Int, r1: Int,
               expected: (value: [Double], scale: [Double]), tolerance: Double,
               run: (UnsafeMutablePointer<Float>) -> Void, ref: (UnsafeMutablePointer<Float>) -> Void,
               file: StaticString = #filePath, line: UInt = #line) {
    let sentinel: Float = 12345.5
    let y = Misaligned(repeating: sentinel, count: T * rows), yRef = Misaligned(repeating: sentinel, count: T * rows)
    run(y.pointer)
    ref(yRef.pointer)
    let got = y.array, want = yRef.array
    let tag = "\(what) [\(level)] T=\(T) rows=\(rows) cols=\(cols) r=\(r0)..<\(r1)"
    var failures = 0
    for t in 0 ..< T {
        for r in 0 ..< rows {
            let i = t * rows + r
            guard r >= r0 && r < r1 else {
                if got[i] != sentinel || want[i] != sentinel {
                    XCTFail("\(tag): wrote row \(r) outside the range", file: file, line: line)
                    return
                }
                continue
            }
            let scale = expected.scale[i] + 1e-30
            let refError = abs(Double(want[i]) - expected.value[i])
            let varError = abs(Double(got[i]) - Double(want[i]))
            let ok = refError <= Tolerance.gemm * scale && (tolerance == 0 ? got[i] == want[i] : varError <= tolerance * scale)
            if !ok {
                XCTFail("\(tag) t=\(t) r=\(r): got \(got[i]), ref \(want[i]), exact \(expected.value[i]), scale \(scale)",
                        file: file, line: line)
                failures += 1
                if failures > 5 { return }
            }
        }
    }
}

/// |a - b| <= tol * max(|b|, 1): relative for large values, absolute near zero.
func assertClose(_ a: [Float], _ b: [Double], tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, what, file: file, line: line)
    for i in 0 ..< min(a.count, b.count) where !(abs(Double(a[i]) - b[i]) <= Double(tol) * max(abs(b[i]), 1)) {
        XCTFail("\(what): [\(i)] \(a[i]) vs \(b[i])", file: file, line: line)
        return
    }
}
