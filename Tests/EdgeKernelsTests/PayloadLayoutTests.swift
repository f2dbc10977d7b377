import EdgeKernels
import XCTest

/// The kernels read the q8 and q4 payloads of docs/edge-format.md in place (Q8Layout / Q4Layout in
/// Sources/EdgeFormat/Encoding.swift): payload bytes built by hand from the layout, the kernel run
/// on pointers at the layout's offsets, compared with decoding the bytes to f32 then an f32 matmul.
final class PayloadLayoutTests: XCTestCase {
    private func align64(_ n: Int) -> Int { (n + 63) & ~63 }

    /// A payload in 64-byte-aligned memory, as the reader maps it.
    private final class Payload {
        let base: UnsafeMutableRawPointer
        let count: Int
        init(_ bytes: [UInt8]) {
            count = bytes.count
            base = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
            base.copyMemory(from: bytes, byteCount: bytes.count)
        }
        deinit { base.deallocate() }
        func at<T>(_ offset: Int, _: T.Type) -> UnsafeMutablePointer<T> { (base + offset).assumingMemoryBound(to: T.self) }
    }

    private func appendLE(_ bytes: inout [UInt8], _ v: UInt32) { for i in 0 ..< 4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    private func appendLE(_ bytes: inout [UInt8], _ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
    private func pad(_ bytes: inout [UInt8]) { bytes += [UInt8](repeating: 0, count: align64(bytes.count) - bytes.count) }

    /// Decode-then-f32 on the same X, compared within the GEMM tolerance.
    private func compareWithDecoded(_ what: String, decoded: [Float], x: [Float], T: Int, rows: Int, cols: Int,
                                    run: (UnsafeMutablePointer<Float>) -> Void) {
        let y = Misaligned(repeating: Float(0), count: T * rows), yDense = Misaligned(repeating: Float(0), count: T * rows)
        run(y.pointer)
        let w = Misaligned(decoded), xb = Misaligned(x)
        edge_matmul_f32(w.pointer, xb.pointer, yDense.pointer, T, rows, cols, 0, rows)
        let scale = denseProduct(decoded, x, T: T, rows: rows, cols: cols).scale
        let got = y.array, want = yDense.array
        for i in 0 ..< T * rows where !(abs(Double(got[i]) - Double(want[i])) <= 2 * Tolerance.gemm * scale[i] + 1e-30) {
            XCTFail("\(what) [\(levelName(edge_kernels_level()))] [\(i)]: \(got[i]) vs decoded \(want[i])")
            return
        }
    }

    func testQ8PayloadInPlace() {
        var rng = TestRNG(seed: 31)
        forEachKernelLevel { _ in
            for symmetric in [true, false] {
                let rows = 7, cols = 45, T = 5
                let q = (0 ..< rows * cols).map { _ in UInt8(symmetric ? UInt8(bitPattern: Int8(rng.int(-127 ... 127))) : UInt8(rng.int(0 ... 255))) }
                let scales = rng.floats(rows, 0.001, 0.05), zeros = (0 ..< rows).map { _ in UInt8(rng.int(0 ... 255)) }
                // q (rows*cols), pad to 64, scale (rows f32 LE), [pad to 64, zero (rows u8)]
                var bytes = q
                pad(&bytes)
                let scaleOffset = bytes.count
                XCTAssertEqual(scaleOffset, align64(rows * cols))
                for s in scales { appendLE(&bytes, s.bitPattern) }
                var zeroOffset = 0
                if !symmetric {
                    pad(&bytes)
                    zeroOffset = bytes.count
                    XCTAssertEqual(zeroOffset, align64(scaleOffset + rows * 4))
                    bytes += zeros
                }
                let p = Payload(bytes)
                // decode straight from the bytes, per the layout
                var decoded = [Float](repeating: 0, count: rows * cols)
                for r in 0 ..< rows {
                    let s = Float(bitPattern: (0 ..< 4).reduce(UInt32(0)) { $0 | UInt32(bytes[scaleOffset + 4 * r + $1]) << (8 * $1) })
                    for j in 0 ..< cols {
                        let b = bytes[r * cols + j]
                        decoded[r * cols + j] = symmetric ? s * Float(Int8(bitPattern: b)) : s * Float(Int(b) - Int(bytes[zeroOffset + r]))
                    }
                }
                let x = rng.floats(T * cols), xb = Misaligned(x)
                compareWithDecoded("q8 sym=\(symmetric)", decoded: decoded, x: x, T: T, rows: rows, cols: cols) { y in
                    edge_matmul_q8_f32(p.at(0, Int8.self), p.at(scaleOffset, Float.self), symmetric ? nil : p.at(zeroOffset, UInt8.self),
                                       xb.pointer, y, T, rows, cols, 0, rows)
                }
            }
        }
    }

    func testQ4PayloadInPlace() {
        var rng = TestRNG(seed: 32)
        forEachKernelLevel { _ in
            for symmetric in [true, false] {
                let rows = 6, cols = 77, groupSize = 32, T = 4  // odd cols: a half-used last byte and a short last group
                let groups = (cols + groupSize - 1) / groupSize, rowBytes = (cols + 1) / 2
                let u = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 15)) }
                let scales = (0 ..< rows * groups).map { _ in f16Bits(rng.float(0.001, 0.1)) }
                let zeros = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 15)) }
                // q (rows * ceil(cols/2), low nibble = even element), pad to 64, scale (rows*groups f16 LE), [pad to 64, zero]
                var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
                for r in 0 ..< rows {
                    for j in 0 ..< cols { bytes[r * rowBytes + j / 2] |= j % 2 == 0 ? u[r * cols + j] : u[r * cols + j] << 4 }
                }
                pad(&bytes)
                let scaleOffset = bytes.count
                for s in scales { appendLE(&bytes, s) }
                var zeroOffset = 0
                if !symmetric {
                    pad(&bytes)
                    zeroOffset = bytes.count
                    bytes += zeros
                }
                let p = Payload(bytes)
                var decoded = [Float](repeating: 0, count: rows * cols)
                for r in 0 ..< rows {
                    for j in 0 ..< cols {
                        let byte = bytes[r * rowBytes + j / 2]
                        let nibble = j % 2 == 0 ? byte & 0x0F : byte >> 4
                        let gi = r * groups + j / groupSize
                        let s = f16Value(UInt16(bytes[scaleOffset + 2 * gi]) | UInt16(bytes[scaleOffset + 2 * gi + 1]) << 8)
                        let z = symmetric ? 8 : Int(bytes[zeroOffset + gi])
                        decoded[r * cols + j] = s * Float(Int(nibble) - z)
                    }
                }
                let x = rng.floats(T * cols), xb = Misaligned(x)
                compareWithDecoded("q4 sym=\(symmetric)", decoded: decoded, x: x, T: T, rows: rows, cols: cols) { y in
                    edge_matmul_q4_f32(p.at(0, UInt8.self), p.at(scaleOffset, UInt16.self), symmetric ? nil : p.at(zeroOffset, UInt8.self),
                                       groupSize, xb.pointer, y, T, rows, cols, 0, rows)
                }
            }
        }
    }

    func testQ3PayloadInPlace() {
        var rng = TestRNG(seed: 33)
        forEachKernelLevel { _ in
            for symmetric in [true, false] {
                let rows = 6, cols = 77, groupSize = 32, T = 4  // 231 bits a row: codes straddle bytes, a short last group
                let groups = (cols + groupSize - 1) / groupSize, rowBytes = (3 * cols + 7) / 8
                let u = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 7)) }
                let scales = (0 ..< rows * groups).map { _ in f16Bits(rng.float(0.001, 0.1)) }
                let zeros = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 7)) }
                // codes (rows * ceil(3*cols/8), a little-endian bit stream per row), pad to 64, scale (f16 LE), [pad to 64, zero]
                var bytes = GEMMTests.packQ3(u, rows: rows, cols: cols)
                pad(&bytes)
                let scaleOffset = bytes.count
                for s in scales { appendLE(&bytes, s) }
                var zeroOffset = 0
                if !symmetric {
                    pad(&bytes)
                    zeroOffset = bytes.count
                    bytes += zeros
                }
                let p = Payload(bytes)
                var decoded = [Float](repeating: 0, count: rows * cols)
                for r in 0 ..< rows {
                    for j in 0 ..< cols {
                        // Three bits from the row's 64-bit little-endian window holding them.
                        let bit = 3 * j, first = r * rowBytes + bit / 8
                        let window = (0 ..< 2).reduce(0) { $0 | (first + $1 < (r + 1) * rowBytes ? Int(bytes[first + $1]) << (8 * $1) : 0) }
                        let code = window >> (bit % 8) & 7
                        let gi = r * groups + j / groupSize
                        let s = f16Value(UInt16(bytes[scaleOffset + 2 * gi]) | UInt16(bytes[scaleOffset + 2 * gi + 1]) << 8)
                        let z = symmetric ? 4 : Int(bytes[zeroOffset + gi])
                        decoded[r * cols + j] = s * Float(code - z)
                    }
                }
                let x = rng.floats(T * cols), xb = Misaligned(x)
                compareWithDecoded("q3 sym=\(symmetric)", decoded: decoded, x: x, T: T, rows: rows, cols: cols) { y in
                    edge_matmul_q3_f32(p.at(0, UInt8.self), p.at(scaleOffset, UInt16.self), symmetric ? nil : p.at(zeroOffset, UInt8.self),
                                       groupSize, xb.pointer, y, T, rows, cols, 0, rows)
                }
            }
        }
    }
}
