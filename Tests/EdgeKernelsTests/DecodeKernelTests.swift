import EdgeKernels
import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one-token (decoding) paths of the float-activation GEMMs: the fused kernels (`avx2-fused-1x1`, `avx512-fused-1x1`:
/// weights unpacked in registers, no dequantized buffer) must give exactly the bits of the dot-product
/// path, which a 2-token call still runs (a token's sums do not depend on how many tokens share the tile).
final class DecodeKernelTests: XCTestCase {
    static let cols = [1, 7, 8, 16, 31, 64, 200, 576, 1025, 1536]
    static let rows = [1, 3, 4, 5, 9, 37]

    /// Y(T = 1) against the first row of Y(T = 2) with the same first token, bit for bit, at every level,
    /// for every row range; run computes [T, rows] outputs for rows [r0, r1).
    private func checkDecode(_ what: String, rows: Int, cols: Int, rng: inout TestRNG,
                             run: (_ x: [Float], _ T: Int, _ y: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int) -> Void) {
        let x2 = rng.floats(2 * cols, -2, 2)
        let x1 = Array(x2[0 ..< cols])
        _ = forEachKernelLevel { level in
            for (r0, r1) in [(0, rows), (rows / 3, rows - rows / 4)] where r0 < r1 {
                var y1 = [Float](repeating: .nan, count: rows), y2 = [Float](repeating: .nan, count: 2 * rows)
                y1.withUnsafeMutableBufferPointer { run(x1, 1, $0.baseAddress!, r0, r1) }
                y2.withUnsafeMutableBufferPointer { run(x2, 2, $0.baseAddress!, r0, r1) }
                for r in 0 ..< rows {
                    if r >= r0 && r < r1 {
                        XCTAssertEqual(y1[r].bitPattern, y2[r].bitPattern, "\(what) \(level) rows \(rows) cols \(cols) r \(r): \(y1[r]) vs \(y2[r])")
                    } else {
                        XCTAssertTrue(y1[r].isNaN, "\(what) \(level): row \(r) outside [\(r0), \(r1)) written")
                    }
                }
            }
        }
    }

    func testOneTokenMatchesTheDotPathBitForBit() {
        var rng = TestRNG(seed: 7)
        for cols in Self.cols {
            for rows in Self.rows {
                let w = rng.floats(rows * cols)
                checkDecode("f32", rows: rows, cols: cols, rng: &rng) { x, T, y, r0, r1 in
                    edge_matmul_f32(w, x, y, T, rows, cols, r0, r1)
                }
                let h = w.map { edge_f32_to_f16($0) }
                checkDecode("f16", rows: rows, cols: cols, rng: &rng) { x, T, y, r0, r1 in
                    edge_matmul_f16(h, x, y, T, rows, cols, r0, r1)
                }
                let q = (0 ..< rows * cols).map { _ in Int8(rng.int(-127 ... 127)) }
                let scale = rng.floats(rows, 0.001, 0.05)
                let zero = (0 ..< rows).map { _ in UInt8(rng.int(0 ... 255)) }
                checkDecode("q8 sym", rows: rows, cols: cols, rng: &rng) { x, T, y, r0, r1 in
                    edge_matmul_q8_f32(q, scale, nil, x, y, T, rows, cols, r0, r1)
                }
                checkDecode("q8 asym", rows: rows, cols: cols, rng: &rng) { x, T, y, r0, r1 in
                    edge_matmul_q8_f32(q, scale, zero, x, y, T, rows, cols, r0, r1)
                }
                // q4: groups a multiple of 8 take the fused kernel, others (12) the dot path; both must agree.
                for group in [8, 12, 32, 64] {
                    let groups = (cols + group - 1) / group, rowBytes = (cols + 1) / 2
                    let nib = (0 ..< rows * rowBytes).map { _ in UInt8(rng.int(0 ... 255)) }
                    let s16 = rng.floats(rows * groups, 0.001, 0.1).map { edge_f32_to_f16($0) }
                    let z4 = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 15)) }
                    for asym in [false, true] {
                        checkDecode("q4 g\(group)\(asym ? " asym" : "")", rows: rows, cols: cols, rng: &rng) { x, T, y, r0, r1 in
                            if asym {
                                edge_matmul_q4_f32(nib, s16, z4, group, x, y, T, rows, cols, r0, r1)
                            } else {
                                edge_matmul_q4_f32(nib, s16, nil, group, x, y, T, rows, cols, r0, r1)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The kernel name reports the fused kernel for one token on AVX2 and AVX-512, the dot kernel for two.
    func testKernelNames() throws {
        guard edge_kernels_available(EDGE_KERNELS_AVX2) else { throw XCTSkip("no AVX2 on this machine") }
        XCTAssertEqual(String(cString: edge_kernels_gemm_name(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q8_F32, 1)), "avx2-fused-1x1")
        XCTAssertEqual(String(cString: edge_kernels_gemm_name(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q8_F32, 2)), "avx2-dot-4x3")
        XCTAssertEqual(String(cString: edge_kernels_gemm_name(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q3_F32, 1)), "avx2-dot-4x3")
        XCTAssertEqual(String(cString: edge_kernels_gemm_name(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q4K_F32, 1)), "avx2-dot-4x3")
        guard edge_kernels_available(EDGE_KERNELS_AVX512) else { return }  // scripts/test-avx512-emulated.sh checks it elsewhere
        XCTAssertEqual(String(cString: edge_kernels_gemm_name(EDGE_KERNELS_AVX512, EDGE_GEMM_OP_F32, 1)), "avx512-fused-1x1")
        XCTAssertEqual(String(cString: edge_kernels_gemm_name(EDGE_KERNELS_AVX512, EDGE_GEMM_OP_F32, 2)), "avx512-dot-4x4")
    }
}

/// The persistent worker pool (EdgeKernelsPool.h).
final class WorkerPoolTests: XCTestCase {
    /// Counts per index, and which thread ran it, written by the tasks through raw buffers (each
    /// task writes only its own index).
    final class Record {
        let n: Int
        let hitsBuffer: UnsafeMutablePointer<Int>
        let runnerBuffer: UnsafeMutablePointer<UInt64>
        init(_ n: Int) {
            self.n = n
            hitsBuffer = .allocate(capacity: max(1, n))
            hitsBuffer.initialize(repeating: 0, count: max(1, n))
            runnerBuffer = .allocate(capacity: max(1, n))
            runnerBuffer.initialize(repeating: 0, count: max(1, n))
        }
        deinit {
            hitsBuffer.deallocate()
            runnerBuffer.deallocate()
        }
        var hits: [Int] { Array(UnsafeBufferPointer(start: hitsBuffer, count: n)) }
        var runner: [UInt64] { Array(UnsafeBufferPointer(start: runnerBuffer, count: n)) }
    }

    func testEveryTaskRunsOnceOnItsParticipant() {
        for participants in [1, 2, 3, 5] {
            guard let pool = edge_pool_create(participants) else { return XCTFail("no pool for \(participants)") }
            defer { edge_pool_destroy(pool) }
            XCTAssertEqual(edge_pool_participants(pool), participants)
            for n in [0, 1, 2, 3, 7, 64] {
                for _ in 0 ..< 200 {  // back-to-back jobs: workers still spinning, or asleep, must not miss one
                    let rec = Record(n)
                    let ok = withExtendedLifetime(rec) {
                        edge_pool_run(pool, n, { ctx, i in
                            let r = Unmanaged<Record>.fromOpaque(ctx!).takeUnretainedValue()
                            r.hitsBuffer[i] += 1
                            r.runnerBuffer[i] = UInt64(pthread_self())
                        }, Unmanaged.passUnretained(rec).toOpaque())
                    }
                    XCTAssertTrue(ok)
                    XCTAssertEqual(rec.hits, [Int](repeating: 1, count: n), "participants \(participants) n \(n)")
                    // Task i runs on participant i % P: tasks with the same residue share a thread.
                    for i in 0 ..< n where i >= participants {
                        XCTAssertEqual(rec.runner[i], rec.runner[i % participants], "participants \(participants) n \(n) task \(i)")
                    }
                    if participants > 1 && n > 1 {
                        XCTAssertNotEqual(rec.runner[0], rec.runner[1], "tasks 0 and 1 on different threads")
                    }
                }
            }
        }
    }

    /// Jobs after the workers have gone to sleep (past EDGE_POOL_SPIN_NS) still run.
    func testJobsAfterWorkersSleep() {
        guard let pool = edge_pool_create(3) else { return XCTFail("no pool") }
        defer { edge_pool_destroy(pool) }
        for _ in 0 ..< 3 {
            usleep(UInt32(EDGE_POOL_SPIN_NS / 1000 * 3))
            let rec = Record(6)
            XCTAssertTrue(edge_pool_run(pool, 6, { ctx, i in
                Unmanaged<Record>.fromOpaque(ctx!).takeUnretainedValue().hitsBuffer[i] += 1
            }, Unmanaged.passUnretained(rec).toOpaque()))
            XCTAssertEqual(rec.hits, [1, 1, 1, 1, 1, 1])
        }
    }

    /// A call made while the pool runs a job (here from inside a task) is refused, running nothing.
    func testNestedCallIsRefused() {
        guard let pool = edge_pool_create(2) else { return XCTFail("no pool") }
        defer { edge_pool_destroy(pool) }
        final class Box {
            var pool: OpaquePointer?
            let nested = UnsafeMutablePointer<Bool>.allocate(capacity: 2)
            deinit { nested.deallocate() }
        }
        let box = Box()
        box.pool = pool
        box.nested.initialize(repeating: true, count: 2)
        XCTAssertTrue(edge_pool_run(pool, 2, { ctx, i in
            let b = Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue()
            b.nested[i] = edge_pool_run(b.pool, 1, { _, _ in }, nil)
        }, Unmanaged.passUnretained(box).toOpaque()))
        XCTAssertEqual([box.nested[0], box.nested[1]], [false, false])
    }
}

/// SHA-256 on the x86 SHA extensions gives the scalar code's digests (FIPS 180-4 vectors, and
/// random data of every length around the block size, fed in uneven pieces).
final class SHA256KernelTests: XCTestCase {
    override func tearDown() { _ = edge_sha256_use_accelerated(edge_sha256_accelerated_available()) }

    private func digest(_ bytes: [UInt8], pieces: Int) -> [UInt8] {
        var ctx = edge_sha256_ctx()
        edge_sha256_init(&ctx)
        var start = 0
        for p in 0 ..< pieces {
            let end = p == pieces - 1 ? bytes.count : min(bytes.count, start + bytes.count / pieces + p)
            bytes[start ..< end].withUnsafeBytes { edge_sha256_update(&ctx, $0.baseAddress, $0.count) }
            start = end
        }
        var out = [UInt8](repeating: 0, count: 32)
        edge_sha256_final(&ctx, &out)
        return out
    }

    func testAcceleratedMatchesScalar() throws {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        let hex = { (d: [UInt8]) in d.map { String(format: "%02x", $0) }.joined() }
        var rng = TestRNG(seed: 256)
        let data = (0 ..< 5000).map { _ in UInt8(rng.int(0 ... 255)) }
        var modes = [false]
        if edge_sha256_accelerated_available() { modes.append(true) } else { XCTAssertFalse(edge_sha256_use_accelerated(true)) }
        var results: [[[UInt8]]] = []
        for on in modes {
            XCTAssertTrue(edge_sha256_use_accelerated(on))
            XCTAssertEqual(hex(digest(Array("abc".utf8), pieces: 1)), abc, "accelerated \(on)")
            XCTAssertEqual(hex(digest([], pieces: 1)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            var r: [[UInt8]] = []
            for n in Array(0 ... 200) + [255, 256, 257, 1000, 4095, 4096, 5000] {
                for pieces in [1, 3] { r.append(digest(Array(data[0 ..< n]), pieces: pieces)) }
            }
            results.append(r)
        }
        if results.count == 2 { XCTAssertEqual(results[0], results[1]) }
    }
}
