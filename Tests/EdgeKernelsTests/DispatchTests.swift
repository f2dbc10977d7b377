import EdgeKernels
import Foundation
import XCTest

/// The run-time choice of SIMD level: forcing, availability, names and the EDGE_KERNELS variable.
final class DispatchTests: XCTestCase {
    override func tearDown() {
        unsetenv("EDGE_KERNELS")
        _ = edge_kernels_force(EDGE_KERNELS_AUTO)
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

    /// Automatic choice: the best available level, unless EDGE_KERNELS names an available one.
    func testAutoAndEnvironment() {
        let best = allKernelLevels.last(where: { edge_kernels_available($0) })!
        unsetenv("EDGE_KERNELS")
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AUTO))
        XCTAssertEqual(edge_kernels_level(), best)
        setenv("EDGE_KERNELS", "ref", 1)
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AUTO))
        XCTAssertEqual(edge_kernels_level(), EDGE_KERNELS_REF)
        setenv("EDGE_KERNELS", "no-such-level", 1)
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AUTO))
        XCTAssertEqual(edge_kernels_level(), best, "an unknown name falls back to the best level")
        for level in allKernelLevels where !edge_kernels_available(level) {
            setenv("EDGE_KERNELS", levelName(level), 1)
            XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_AUTO))
            XCTAssertEqual(edge_kernels_level(), best, "an unavailable \(levelName(level)) falls back to the best level")
        }
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
