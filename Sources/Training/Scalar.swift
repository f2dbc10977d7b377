import Dispatch
import EdgeKernels
import Foundation

/// The number type training runs in: Float for real work (matrix products through the runtime's
/// C kernels), Double for gradient checks against finite differences (plain loops).
public protocol TrainScalar: BinaryFloatingPoint, Sendable {
    /// C[m, n] = A[m, k] · B[k, n]^T (row-major), or C += that when `accumulate`;
    /// split over `threads` along n. `bf16`: both operands rounded to bfloat16, the products summed in
    /// float (`edge_matmul_bf16`; Float only, Double ignores it).
    static func gemm(_ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>, _ c: UnsafeMutablePointer<Self>,
                     m: Int, n: Int, k: Int, accumulate: Bool, threads: Int, bf16: Bool)
    /// C[m, n] = A[m, k] · B[k, n] (row-major, B not transposed), or C += that when `accumulate`;
    /// split over `threads` along n. The same float operations as `gemm` with B's transpose.
    static func gemmNN(_ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>, _ c: UnsafeMutablePointer<Self>,
                       m: Int, n: Int, k: Int, accumulate: Bool, threads: Int, bf16: Bool)
    /// dst[c, r] = src[r, c] for a [rows, cols] matrix, split over `threads` along the rows.
    static func transpose(_ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>, rows: Int, cols: Int, threads: Int)
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    /// The error function (GELU erf, BERT's MLP activation).
    static func erf(_ x: Self) -> Self
    static func cos(_ x: Self) -> Self
    static func sin(_ x: Self) -> Self
    static func pow(_ x: Self, _ y: Self) -> Self
}

/// Products below this many multiply-adds run on one thread.
let parallelWork = 1 << 18

/// Runs `body(c)` for c in 0..<chunks, concurrently when chunks > 1.
@inline(__always) func parallel(_ chunks: Int, _ body: (Int) -> Void) {
    if chunks <= 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: body) }
}

/// C[m, n] += A[m, k] · (B), the product made apart and then added, a block of C's rows at a time
/// (each row of C is its own product, so blocks change nothing): about 4 MB of temporary instead of
/// a whole second C (the tied head's weight gradient is 113 MB on SmolLM2).
/// `product(rows of A, out, row count)` writes that block's product to `out`.
func addByRowBlocks(_ a: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int,
                    _ product: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
    let rows = max(1, min(m, (1 << 20) / max(1, n))), tmp = UnsafeMutablePointer<Float>.allocate(capacity: rows * n)
    defer { tmp.deallocate() }
    for r0 in stride(from: 0, to: m, by: rows) {
        let mr = min(rows, m - r0)
        product(a + r0 * k, tmp, mr)
        edge_add(c + r0 * n, tmp, mr * n)
    }
}

/// Elementwise work below this many items per thread runs on one thread.
let parallelItems = 1 << 14

/// Splits 0..<count into `threads` contiguous ranges (one when `count * cost` is below
/// `parallelItems`) and runs `body` on each, concurrently. Each index is in exactly one range, so a
/// loop over a range does what the loop over 0..<count did, in the same order within each index.
@inline(__always) public func parallelRanges(_ count: Int, threads: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
    let chunks = count * cost < parallelItems ? 1 : max(1, min(threads, count))
    parallel(chunks) { c in body((count * c / chunks) ..< (count * (c + 1) / chunks)) }
}

extension Float: TrainScalar {
    public static func gemm(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                            m: Int, n: Int, k: Int, accumulate: Bool, threads: Int, bf16: Bool = false) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if !accumulate { c.update(repeating: 0, count: m * n) }
            return
        }
        if accumulate {
            return addByRowBlocks(a, c, m: m, n: n, k: k) {
                gemm($0, b, $1, m: $2, n: n, k: k, accumulate: false, threads: threads, bf16: bf16)
            }
        }
        let chunks = m * n * k < parallelWork ? 1 : max(1, min(threads, n / 8))
        parallel(chunks) { i in
            if bf16 { edge_matmul_bf16(b, a, c, m, n, k, n * i / chunks, n * (i + 1) / chunks) }
            else { edge_matmul_f32(b, a, c, m, n, k, n * i / chunks, n * (i + 1) / chunks) }
        }
    }
    public static func gemmNN(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                              m: Int, n: Int, k: Int, accumulate: Bool, threads: Int, bf16: Bool = false) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if !accumulate { c.update(repeating: 0, count: m * n) }
            return
        }
        if accumulate {
            return addByRowBlocks(a, c, m: m, n: n, k: k) {
                gemmNN($0, b, $1, m: $2, n: n, k: k, accumulate: false, threads: threads, bf16: bf16)
            }
        }
        let chunks = m * n * k < parallelWork ? 1 : max(1, min(threads, n / 8))
        parallel(chunks) { i in
            if bf16 { edge_matmul_bf16_wt(b, a, c, m, n, k, n * i / chunks, n * (i + 1) / chunks) }
            else { edge_matmul_f32_wt(b, a, c, m, n, k, n * i / chunks, n * (i + 1) / chunks) }
        }
    }
    public static func transpose(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                 threads: Int) {
        let chunks = rows * cols < parallelWork ? 1 : max(1, min(threads, rows / 32))
        parallel(chunks) { i in edge_transpose_f32(src, dst, rows, cols, rows * i / chunks, rows * (i + 1) / chunks) }
    }
    public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
    public static func log(_ x: Float) -> Float { Foundation.log(x) }
    public static func tanh(_ x: Float) -> Float { Foundation.tanh(x) }
    public static func erf(_ x: Float) -> Float { Foundation.erff(x) }
    public static func cos(_ x: Float) -> Float { Foundation.cos(x) }
    public static func sin(_ x: Float) -> Float { Foundation.sin(x) }
    public static func pow(_ x: Float, _ y: Float) -> Float { Foundation.pow(x, y) }
}

extension Double: TrainScalar {
    public static func gemm(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>,
                            m: Int, n: Int, k: Int, accumulate: Bool, threads: Int, bf16: Bool = false) {
        for i in 0 ..< m {
            for j in 0 ..< n {
                var s = 0.0
                for t in 0 ..< k { s += a[i * k + t] * b[j * k + t] }
                c[i * n + j] = accumulate ? c[i * n + j] + s : s
            }
        }
    }
    public static func gemmNN(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>,
                              m: Int, n: Int, k: Int, accumulate: Bool, threads: Int, bf16: Bool = false) {
        for i in 0 ..< m {
            for j in 0 ..< n {
                var s = 0.0
                for t in 0 ..< k { s += a[i * k + t] * b[t * n + j] }
                c[i * n + j] = accumulate ? c[i * n + j] + s : s
            }
        }
    }
    public static func transpose(_ src: UnsafePointer<Double>, _ dst: UnsafeMutablePointer<Double>, rows: Int, cols: Int,
                                 threads: Int) {
        Training.transpose(src, dst, rows: rows, cols: cols)
    }
    public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    public static func log(_ x: Double) -> Double { Foundation.log(x) }
    public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    public static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    public static func cos(_ x: Double) -> Double { Foundation.cos(x) }
    public static func sin(_ x: Double) -> Double { Foundation.sin(x) }
    public static func pow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
}

/// dst[c, r] = src[r, c] for a [rows, cols] matrix, in cache-sized tiles.
func transpose<R>(_ src: UnsafePointer<R>, _ dst: UnsafeMutablePointer<R>, rows: Int, cols: Int) {
    let tile = 32
    var r0 = 0
    while r0 < rows {
        let r1 = min(rows, r0 + tile)
        var c0 = 0
        while c0 < cols {
            let c1 = min(cols, c0 + tile)
            for r in r0 ..< r1 {
                for c in c0 ..< c1 { dst[c * rows + r] = src[r * cols + c] }
            }
            c0 = c1
        }
        r0 = r1
    }
}
