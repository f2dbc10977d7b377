import EdgeKernels
import EdgeRuntime
import Foundation
import XCTest

/// `KernelInfo` reports the kernels the dispatch runs, and its GEMM mode switch is the kernels'.
final class KernelInfoTests: XCTestCase {
    override func tearDown() {
        KernelInfo.setGEMMMode(.auto)
        _ = edge_kernels_force(EDGE_KERNELS_AUTO)
    }

    func testReportsTheActiveKernels() throws {
        KernelInfo.setGEMMMode(.auto)
        let info = KernelInfo.current(batchTokens: 64)
        XCTAssertEqual(info.level, String(cString: edge_kernels_level_name(edge_kernels_level())))
        XCTAssertEqual(info.vnni, edge_kernels_uses_vnni())
        XCTAssertEqual(info.gemmMode, .auto)
        XCTAssertEqual(Set(info.decode.keys), Set(KernelInfo.Product.allCases.map(\.rawValue) + ["bitmask_q8_i16"]))
        XCTAssertEqual(info.batchTokens, 64)
        #if arch(x86_64)
        if edge_kernels_level() == EDGE_KERNELS_AVX2 {
            XCTAssertEqual(info.decode["f32"], "avx2-fused-1x1")
            XCTAssertEqual(info.decode["q8_i16"], "avx2-rows-i16-4x1")
            XCTAssertEqual(info.decode["q4_i16"], "avx2-bytes-q4i16-1x2")
            XCTAssertEqual(info.decode["q4_q8b32"], "avx2-rows-q4q8b32-4x1")
            XCTAssertEqual(info.decode["q4k_q8b32"], "avx2-rows-q4kq8b32-4x1")
            XCTAssertEqual(info.batch["q4_i16_gemm"], "avx2-packed-q4i16-6x16")
            XCTAssertEqual(info.decode["q4k_i16"], "avx2-bytes-q4ki16-1x2")
            XCTAssertEqual(info.batch["q4k_i16_gemm"], "avx2-packed-q4ki16-6x16")
            XCTAssertEqual(info.batch["f32"], "avx2-packed-6x16")
            XCTAssertEqual(info.batch["q4_f32"], "avx2-packed-6x16")
            XCTAssertEqual(info.batch["q3_f32"], "avx2-packed-6x16")
            XCTAssertEqual(info.decode["q3_f32"], "avx2-dot-4x3")
            XCTAssertEqual(info.batch["q4k_f32"], "avx2-packed-6x16")
            XCTAssertEqual(info.decode["q4k_f32"], "avx2-dot-4x3")
            XCTAssertEqual(info.batch["q8_i16"], "avx2-packed-i16-6x16")
            XCTAssertEqual(info.decode["bitmask_q8_i16"], "avx2-bitmask-i16")
        } else if edge_kernels_level() == EDGE_KERNELS_AVX512 {
            XCTAssertEqual(info.batch["f32"], "avx512-packed-12x32")
            XCTAssertEqual(info.decode["f32"], "avx512-fused-1x1")
            XCTAssertEqual(info.decode["q3_f32"], "avx512-dot-4x4")
            XCTAssertEqual(info.batch["q4k_f32"], "avx512-packed-12x32")
            XCTAssertEqual(info.decode["q4k_f32"], "avx512-dot-4x4")
            let form = edge_kernels_uses_vnni() ? "vnni" : "bw"
            XCTAssertEqual(info.batch["q8_i16"], "avx512-\(form)-packed-i16-12x32")
            XCTAssertEqual(info.decode["q8_i16"], "avx512-\(form)-rows-i16-4x1")
            // One token on byte dot products, with vpdpbusd where VNNI is (two tokens and more on AVX2's rows).
            XCTAssertEqual(info.decode["q4_i16"], edge_kernels_uses_vnni() ? "avx512-vnni-bytes-q4i16-1x2" : "avx2-bytes-q4i16-1x2")
            XCTAssertEqual(info.decode["q4_q8b32"], "avx512-\(form)-rows-q4q8b32-4x1")
            XCTAssertEqual(info.decode["q4k_q8b32"], "avx512-\(form)-rows-q4kq8b32-4x1")
            XCTAssertEqual(info.batch["q4_i16_gemm"], "avx512-\(form)-packed-q4i16-12x32")
            XCTAssertEqual(info.decode["q4k_i16"], edge_kernels_uses_vnni() ? "avx512-vnni-bytes-q4ki16-1x2" : "avx2-bytes-q4ki16-1x2")
            XCTAssertEqual(info.batch["q4k_i16_gemm"], "avx512-\(form)-packed-q4ki16-12x32")
            XCTAssertTrue(["avx2-bitmask-i16", "avx512-vbmi2-bitmask-i16", "avx512-vbmi2-vnni-bitmask-i16"].contains(info.decode["bitmask_q8_i16"]))
        }
        #endif
        // Round-trips through JSON, as a `--json` report carries it.
        let data = try JSONEncoder().encode(info)
        XCTAssertEqual(try JSONDecoder().decode(KernelInfo.self, from: data), info)

        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_REF))
        let ref = KernelInfo.current()
        XCTAssertEqual(ref.level, "ref")
        XCTAssertEqual(Set(ref.batch.values), ["ref"])
    }

    func testGEMMModeSwitch() {
        KernelInfo.setGEMMMode(.dot)
        XCTAssertEqual(KernelInfo.gemmMode, .dot)
        XCTAssertEqual(edge_kernels_gemm_mode(), EDGE_GEMM_DOT)
        let info = KernelInfo.current(batchTokens: 1024)
        XCTAssertEqual(info.gemmMode, .dot)
        XCTAssertEqual(info.batch["f32"], KernelInfo.kernel(.f32, tokens: 2), "dot mode: the dot-product kernel at every token count above 1")
        KernelInfo.setGEMMMode(.auto)
        XCTAssertEqual(edge_kernels_gemm_mode(), EDGE_GEMM_AUTO)
        #if arch(x86_64)
        if edge_kernels_available(EDGE_KERNELS_AVX2) {
            XCTAssertNotEqual(KernelInfo.kernel(.f32, tokens: 1024), KernelInfo.kernel(.f32, tokens: 1))
        }
        #endif
    }
}
