import EdgeKernels
import Foundation
import XCTest

/// The run-time choice of SIMD level: forcing, availability, names; the environment plays no part.
final class DispatchTests: XCTestCase {
    override func tearDown() {
        unsetenv("EDGE_KERNELS")
        _ = edge_kernels_force(EDGE_KERNELS_AUTO)
        _ = edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO)
    }

    func testNames() {
        XCTAssertEqual(allKernelLevels.map(levelName), ["ref", "avx2", "avx512", "neon"])
        XCTAssertEqual(levelName(EDGE_KERNELS_AUTO), "auto")
        XCTAssertEqual(levelName(edge_kernel_level(rawValue: 99)), "?")
    }

    func testForceSwitchesAndRefusesUnavailable() {
        XCTAssertTrue(edge_kernels_available(EDGE_KERNELS_REF))
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_REF))
        XCTAssertEqual(edge_kernels_level(), EDGE_KERNELS_REF)
        XCTAssertFalse(edge_kernels_uses_vnni())
        XCTAssertFalse(edge_kernels_force(edge_kernel_level(rawValue: 99)))
        XCTAssertEqual(edge_kernels_level(), EDGE_KERNELS_REF, "a refused level changes nothing")
        #if arch(x86_64)
        XCTAssertFalse(edge_kernels_available(EDGE_KERNELS_NEON))
        XCTAssertFalse(edge_kernels_force(EDGE_KERNELS_NEON))
        XCTAssertEqual(edge_kernels_level(), EDGE_KERNELS_REF)
        if edge_kernels_available(EDGE_KERNELS_AVX512) { XCTAssertTrue(edge_kernels_available(EDGE_KERNELS_AVX2)) }
        #elseif arch(arm64)
        XCTAssertTrue(edge_kernels_available(EDGE_KERNELS_NEON))
        XCTAssertFalse(edge_kernels_available(EDGE_KERNELS_AVX2))
        XCTAssertFalse(edge_kernels_available(EDGE_KERNELS_AVX512))
        #endif
        for level in allKernelLevels where edge_kernels_available(level) {
            XCTAssertTrue(edge_kernels_force(level))
            XCTAssertEqual(edge_kernels_level(), level)
        }
    }

    /// Automatic choice: the best available level, whatever the environment says (the variables
    /// older builds read, EDGE_KERNELS and EDGE_GEMM, change nothing: results never depend on them).
    func testAutoIgnoresTheEnvironment() {
        let best = allKernelLevels.last(where: { edge_kernels_available($0) })!
        unsetenv("EDGE_KERNELS")
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AUTO))
        XCTAssertEqual(edge_kernels_level(), best)
        setenv("EDGE_KERNELS", "ref", 1)
        setenv("EDGE_GEMM", "dot", 1)
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AUTO))
        XCTAssertEqual(edge_kernels_level(), best, "EDGE_KERNELS=ref is not read")
        XCTAssertEqual(edge_kernels_gemm_mode(), EDGE_GEMM_AUTO, "EDGE_GEMM=dot is not read")
        unsetenv("EDGE_GEMM")
    }

    /// The (dot-product, packed) f32 GEMM kernels of `level`; NEON has no packed one.
    private func floatGEMMKernels(_ level: edge_kernel_level) -> (dot: String, packed: String) {
        switch level {
        case EDGE_KERNELS_AVX2: ("avx2-dot-4x3", "avx2-packed-6x16")
        case EDGE_KERNELS_AVX512: ("avx512-dot-4x4", "avx512-packed-12x32")
        case EDGE_KERNELS_NEON: ("neon-dot-4x4", "neon-dot-4x4")
        default: ("ref", "ref")
        }
    }

    private func gemmName(_ level: edge_kernel_level, _ op: edge_gemm_op, _ T: Int) -> String? {
        edge_kernels_gemm_name(level, op, T).map { String(cString: $0) }
    }

    /// Which GEMM kernel the dispatch picks: per level, op and token count (packed from 12 tokens
    /// where the level has a packed kernel), and for the automatic choice on this machine: an
    /// AVX-512 CPU runs the AVX-512 packed kernel, an AVX2-only one the AVX2 packed kernel.
    func testGEMMKernelNames() {
        let floatOps = [EDGE_GEMM_OP_F32, EDGE_GEMM_OP_F16, EDGE_GEMM_OP_Q8_F32, EDGE_GEMM_OP_Q4_F32, EDGE_GEMM_OP_Q3_F32,
                        EDGE_GEMM_OP_Q4K_F32]
        XCTAssertEqual(edge_kernels_gemm_mode(), EDGE_GEMM_AUTO)
        for level in allKernelLevels {
            guard edge_kernels_available(level) else {
                XCTAssertNil(gemmName(level, EDGE_GEMM_OP_F32, 64), "\(levelName(level)) is not available")
                continue
            }
            let want = floatGEMMKernels(level)
            for op in floatOps {
                // One token: the fused kernel of AVX2 and AVX-512 (not for q3 or q4k), bit-identical to the level's dot kernel.
                let fused = level == EDGE_KERNELS_AVX2 ? "avx2-fused-1x1" : level == EDGE_KERNELS_AVX512 ? "avx512-fused-1x1" : nil
                let one = op != EDGE_GEMM_OP_Q3_F32 && op != EDGE_GEMM_OP_Q4K_F32 ? fused ?? want.dot : want.dot
                XCTAssertEqual(gemmName(level, op, 1), one, "\(levelName(level)) op \(op.rawValue)")
                XCTAssertEqual(gemmName(level, op, 11), want.dot, "\(levelName(level)) op \(op.rawValue)")
                XCTAssertEqual(gemmName(level, op, 12), want.packed, "\(levelName(level)) op \(op.rawValue)")
                XCTAssertEqual(gemmName(level, op, 4096), want.packed, "\(levelName(level)) op \(op.rawValue)")
            }
        }
        XCTAssertNil(gemmName(EDGE_KERNELS_REF, edge_gemm_op(rawValue: 99), 1))
        XCTAssertEqual(gemmName(EDGE_KERNELS_REF, EDGE_GEMM_OP_Q8_I16, 64), "ref")

        unsetenv("EDGE_KERNELS")
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AUTO))
        #if arch(x86_64)
        if edge_kernels_available(EDGE_KERNELS_AVX512) {
            XCTAssertEqual(edge_kernels_level(), EDGE_KERNELS_AVX512)
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_F32, 64), "avx512-packed-12x32", "AVX-512 runs its packed kernel")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_Q8, 1),
                           edge_kernels_uses_vnni() ? "avx512-vnni-q8q8-4x4" : "avx512-bw-q8q8-4x4")
            let form = edge_kernels_uses_vnni() ? "vnni" : "bw"
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_I16, 64), "avx512-\(form)-packed-i16-12x32")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_I16, 5), "avx512-\(form)-packed-i16-12x32")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_I16, 4), "avx512-\(form)-rows-i16-4x1")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q4_I16, 1),
                           edge_kernels_uses_vnni() ? "avx512-vnni-bytes-q4i16-1x2" : "avx2-bytes-q4i16-1x2",
                           "one token on byte dot products: vpdpbusd with VNNI, else AVX2's vpmaddubsw")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q4_I16, 2), "avx2-rows-q4i16-4x1", "two tokens on AVX2's rows")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q4K_I16, 3), "avx2-rows-q4ki16-4x1", "three tokens on AVX2's rows")
        } else if edge_kernels_available(EDGE_KERNELS_AVX2) {
            // No AVX-512 here: testAVX512UnderEmulation checks the AVX-512 level's names and kernels.
            XCTAssertEqual(edge_kernels_level(), EDGE_KERNELS_AVX2)
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_F32, 64), "avx2-packed-6x16")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_Q8, 1), "avx2-dot-q8q8-4x2")
        }
        if edge_kernels_available(EDGE_KERNELS_AVX2) {
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_Q8B32, 1), "avx2-dot-q8q8b32-4x2")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q8_I16, 64), "avx2-packed-i16-6x16")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q8_I16, 4), "avx2-rows-i16-4x1")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q4_I16, 1), "avx2-bytes-q4i16-1x2")
            XCTAssertEqual(gemmName(EDGE_KERNELS_AVX2, EDGE_GEMM_OP_Q4_I16, 4), "avx2-rows-q4i16-4x1")
        }
        #elseif arch(arm64)
        XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_F32, 64), "neon-dot-4x4")
        #endif
    }

    /// edge_kernels_set_vnni: on a VNNI CPU the AVX-512 level switches to its AVX-512BW integer
    /// kernels and back (names follow; the level stays AVX-512), edge_kernels_force restores VNNI;
    /// refused on other levels and, asking for VNNI, on a CPU without it.
    func testVNNISwitch() throws {
        defer { _ = edge_kernels_force(EDGE_KERNELS_AUTO) }
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_REF))
        XCTAssertFalse(edge_kernels_set_vnni(false), "not an AVX-512 level")
        XCTAssertFalse(edge_kernels_set_vnni(true), "not an AVX-512 level")
        guard edge_kernels_force(EDGE_KERNELS_AVX512) else { throw XCTSkip("no AVX-512 here (the emulated build checks both forms)") }
        guard edge_kernels_uses_vnni() else {
            XCTAssertFalse(edge_kernels_set_vnni(true), "no VNNI on this CPU")
            XCTAssertTrue(edge_kernels_set_vnni(false))
            XCTAssertEqual(gemmName(EDGE_KERNELS_AVX512, EDGE_GEMM_OP_Q8_I16, 64), "avx512-bw-packed-i16-12x32")
            return
        }
        XCTAssertTrue(edge_kernels_set_vnni(false))
        XCTAssertFalse(edge_kernels_uses_vnni())
        XCTAssertEqual(edge_kernels_level(), EDGE_KERNELS_AVX512)
        for level in [EDGE_KERNELS_AUTO, EDGE_KERNELS_AVX512] {
            XCTAssertEqual(gemmName(level, EDGE_GEMM_OP_Q8_Q8, 1), "avx512-bw-q8q8-4x4")
            XCTAssertEqual(gemmName(level, EDGE_GEMM_OP_Q8_I16, 64), "avx512-bw-packed-i16-12x32")
            XCTAssertEqual(gemmName(level, EDGE_GEMM_OP_Q8_I16, 1), "avx512-bw-rows-i16-4x1")
            XCTAssertEqual(gemmName(level, EDGE_GEMM_OP_Q4_I16, 1), "avx2-bytes-q4i16-1x2")
        }
        XCTAssertTrue(edge_kernels_set_vnni(true))
        XCTAssertTrue(edge_kernels_uses_vnni())
        XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_I16, 64), "avx512-vnni-packed-i16-12x32")
        XCTAssertTrue(edge_kernels_set_vnni(false))
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AVX512))
        XCTAssertTrue(edge_kernels_uses_vnni(), "edge_kernels_force restores the CPU's choice")
        XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_Q8_I16, 1), "avx512-vnni-rows-i16-4x1")
    }

    /// EDGE_GEMM_DOT names and runs the dot-product kernel at every token count; unknown modes are refused.
    func testGEMMModeIsReportedAndApplied() {
        XCTAssertEqual(String(cString: edge_gemm_mode_name(EDGE_GEMM_AUTO)), "auto")
        XCTAssertEqual(String(cString: edge_gemm_mode_name(EDGE_GEMM_DOT)), "dot")
        XCTAssertEqual(String(cString: edge_gemm_mode_name(edge_gemm_mode(rawValue: 7))), "?")
        XCTAssertFalse(edge_kernels_set_gemm_mode(edge_gemm_mode(rawValue: 7)))
        XCTAssertEqual(edge_kernels_gemm_mode(), EDGE_GEMM_AUTO, "a refused mode changes nothing")

        var rng = TestRNG(seed: 22)
        let T = 16, rows = 40, cols = 300
        let w = Misaligned(rng.floats(rows * cols)), x = Misaligned(rng.floats(T * cols))
        func run() -> [Float] {
            let y = Misaligned(repeating: Float(0), count: T * rows)
            edge_matmul_f32(w.pointer, x.pointer, y.pointer, T, rows, cols, 0, rows)
            return y.array
        }
        /// One token at a time: always the dot-product kernel, whose outputs do not depend on the tile.
        func tokenByToken() -> [Float] {
            let y = Misaligned(repeating: Float(0), count: T * rows)
            for t in 0 ..< T { edge_matmul_f32(w.pointer, x.pointer + t * cols, y.pointer + t * rows, 1, rows, cols, 0, rows) }
            return y.array
        }
        forEachKernelLevel { level in
            let l = edge_kernels_level()
            XCTAssertTrue(edge_kernels_set_gemm_mode(EDGE_GEMM_DOT))
            XCTAssertEqual(edge_kernels_gemm_mode(), EDGE_GEMM_DOT)
            XCTAssertEqual(gemmName(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_F32, 4096), floatGEMMKernels(l).dot, level)
            let dot = run()
            XCTAssertEqual(dot, tokenByToken(), "[\(level)] dot mode at \(T) tokens is the dot-product kernel")
            XCTAssertTrue(edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO))
            let auto = run()
            if floatGEMMKernels(l).packed != floatGEMMKernels(l).dot {
                XCTAssertNotEqual(auto, dot, "[\(level)] auto mode at \(T) tokens runs the packed kernel, summing in another order")
            } else {
                XCTAssertEqual(auto, dot, "[\(level)] one kernel in both modes")
            }
        }
    }

    /// The mode switched while products run on other threads: every product finishes in one mode
    /// (its row range equals that mode's single-threaded result), and nothing crashes.
    func testGEMMModeSwitchWhileRunning() {
        var rng = TestRNG(seed: 23)
        let T = 16, rows = 64, cols = 200, parts = 8
        let w = Misaligned(rng.floats(rows * cols)), x = Misaligned(rng.floats(T * cols))
        func whole() -> [Float] {
            let y = Misaligned(repeating: Float(0), count: T * rows)
            edge_matmul_f32(w.pointer, x.pointer, y.pointer, T, rows, cols, 0, rows)
            return y.array
        }
        _ = edge_kernels_set_gemm_mode(EDGE_GEMM_DOT)
        let dot = whole()
        _ = edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO)
        let auto = whole()
        for _ in 0 ..< 4 {
            let split = Misaligned(repeating: Float(0), count: T * rows)
            DispatchQueue.concurrentPerform(iterations: 2 * parts) { i in
                if i % 2 == 1 {
                    _ = edge_kernels_set_gemm_mode(i % 4 == 1 ? EDGE_GEMM_DOT : EDGE_GEMM_AUTO)
                    return
                }
                let p = i / 2
                edge_matmul_f32(w.pointer, x.pointer, split.pointer, T, rows, cols, p * rows / parts, (p + 1) * rows / parts)
            }
            let got = split.array
            for p in 0 ..< parts {
                let r0 = p * rows / parts, r1 = (p + 1) * rows / parts
                let slice = { (y: [Float]) in (0 ..< T).flatMap { t in y[t * rows + r0 ..< t * rows + r1] } }
                XCTAssertTrue(slice(got) == slice(auto) || slice(got) == slice(dot), "rows \(r0)..<\(r1) mix two modes")
            }
        }
    }

    /// The AVX-512 level on a CPU without AVX-512: scripts/test-avx512-emulated.sh builds the kernels
    /// with avx512.c on SIMDe's portable AVX-512 and checks both x86 levels against the reference over
    /// odd sizes, and the kernel names (AVX-512: the packed 12x32 kernel from 12 tokens, the fused
    /// one-token kernel below).
    func testAVX512UnderEmulation() throws {
        #if arch(x86_64)
        if edge_kernels_available(EDGE_KERNELS_AVX512) { throw XCTSkip("this CPU runs AVX-512: the other tests cover it natively") }
        guard edge_kernels_available(EDGE_KERNELS_AVX2) else { throw XCTSkip("the emulated build needs AVX2 + FMA + F16C") }
        guard FileManager.default.fileExists(atPath: "/usr/include/simde/x86/avx512.h") else {
            throw XCTSkip("SIMDe missing (apt-get install libsimde-dev): AVX-512 kernels not tested on this machine")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("scripts/test-avx512-emulated.sh").path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("avx512: f32 GEMM avx512-packed-12x32 from 12 tokens, avx512-fused-1x1 below"), output)
        XCTAssertTrue(output.contains("avx512-vnni-q8q8-4x4") && output.contains("avx512-bw-q8q8-4x4"), output)
        XCTAssertTrue(output.contains("avx512-vnni-packed-i16-12x32") && output.contains("avx512-bw-packed-i16-12x32"), output)
        XCTAssertFalse(output.contains("FAIL"), output)
        #else
        throw XCTSkip("x86-64 only")
        #endif
    }

    /// Kernels called from several threads at once (as the runtime splits rows) agree with one call.
    func testConcurrentRowRanges() {
        var rng = TestRNG(seed: 21)
        let T = 5, rows = 64, cols = 100
        let w = Misaligned(rng.floats(rows * cols)), x = Misaligned(rng.floats(T * cols))
        let whole = Misaligned(repeating: Float(0), count: T * rows), split = Misaligned(repeating: Float(0), count: T * rows)
        edge_matmul_f32(w.pointer, x.pointer, whole.pointer, T, rows, cols, 0, rows)
        let parts = 8
        DispatchQueue.concurrentPerform(iterations: parts) { i in
            edge_matmul_f32(w.pointer, x.pointer, split.pointer, T, rows, cols, i * rows / parts, (i + 1) * rows / parts)
        }
        XCTAssertEqual(split.array, whole.array)
    }
}
