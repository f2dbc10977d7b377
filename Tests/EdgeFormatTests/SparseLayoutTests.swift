@testable import EdgeFormat
import Foundation
import XCTest

/// The csr and bitmask encodings: layouts byte by byte, round trips from every dense value encoding
/// over odd shapes and sparsities, the writer/reader path, and hostile payloads refused in one line.
final class SparseLayoutTests: XCTestCase {
    typealias S = EdgeTestSupport

    /// A [rows, cols] matrix with roughly `sparsity` zeros (exactly all or none at 0 and 1), row 1
    /// always empty when there are at least 3 rows, and values in -2...2.
    private func matrix(rows: Int, cols: Int, sparsity: Double, seed: UInt64) -> [Float] {
        var r = S.Rand(seed)
        var v = (0 ..< rows * cols).map { _ in r.float(-2, 2) }
        for i in v.indices where Double(r.next() % 1000) / 1000 < sparsity || sparsity >= 1 { v[i] = 0 }
        if rows >= 3 { for j in 0 ..< cols { v[cols + j] = 0 } }
        return v
    }

    private func decode(_ t: EncodedTensor) -> [Float] { S.decoded(t) }

    func testRoundTripsOverShapesSparsitiesAndValueEncodings() throws {
        var seed: UInt64 = 1
        for (rows, cols) in [(1, 1), (1, 7), (3, 8), (5, 9), (4, 17), (7, 33), (2, 300), (9, 64)] {
            for sparsity in [0.0, 0.5, 0.9, 1.0] {
                seed += 1
                let v = matrix(rows: rows, cols: cols, sparsity: sparsity, seed: seed)
                for dense in S.denseEncodings(v, rows: rows, cols: cols) {
                    let want = decode(dense)
                    let nnz = want.filter { $0 != 0 }.count
                    let c = try XCTUnwrap(dense.sparseCandidates())
                    XCTAssertEqual(c.nnz, nnz)
                    XCTAssertEqual(c.denseBytes, dense.payload.count)
                    for target in [Encoding.csr, .bitmask] {
                        let tag = "\(target) of \(dense.encoding) \(dense.params) [\(rows), \(cols)] sparsity \(sparsity)"
                        let p = try XCTUnwrap(dense.packedSparse(as: target), tag)
                        XCTAssertEqual(p.nnz, nnz, tag)
                        XCTAssertEqual(p.params.valueEncoding, dense.encoding, tag)
                        XCTAssertEqual(p.payload.count, target == .csr ? c.csrBytes : c.bitmaskBytes, tag)
                        XCTAssertEqual(expectedPayloadBytes(encoding: target, shape: p.shape, params: p.params, nnz: nnz), p.payload.count, tag)
                        XCTAssertNil(p.payload.withUnsafeBytes { sparsePayloadProblem($0, encoding: target, shape: p.shape, params: p.params, nnz: nnz) }, tag)
                        XCTAssertEqual(decode(p), want, tag)
                        let l = try XCTUnwrap(SparseLayout(encoding: target, rows: rows, cols: cols, params: p.params, nnz: nnz))
                        var row = [Float](repeating: 7, count: cols)
                        for r in 0 ..< rows {
                            p.payload.withUnsafeBytes { bytes in row.withUnsafeMutableBufferPointer { l.decodeRow(r, bytes, into: $0.baseAddress!) } }
                            XCTAssertEqual(row, Array(want[r * cols ..< (r + 1) * cols]), tag + " row \(r)")
                        }
                    }
                }
            }
        }
    }

    /// Every sub-array at its documented offset, for one hand-checked matrix.
    func testLayoutBytes() throws {
        // [[0, 1.5, 0, 0, 0, 0, 0, 0, 0, -2], [0 x 10], [3, 0 x 9]]: gaps 2 and 9, then 1.
        var v = [Float](repeating: 0, count: 30)
        v[1] = 1.5; v[9] = -2; v[20] = 3
        let dense = EncodedTensor.f32(name: "w", shape: [3, 10], values: v)
        let b = try XCTUnwrap(dense.packedSparse(as: .bitmask))
        XCTAssertEqual(b.params, EncodingParams(valueEncoding: .f32))
        // mask: 2 bytes per row at 0; row_ptr at 64; values at 128.
        XCTAssertEqual(Array(b.payload[0 ..< 6]), [0b0000_0010, 0b0000_0010, 0, 0, 0b0000_0001, 0])
        XCTAssertEqual(Array(b.payload[64 ..< 80]), [0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
        XCTAssertEqual(b.payload.count, 128 + 12)
        XCTAssertEqual(Array(b.payload[128 ..< 132]), [0x00, 0x00, 0xC0, 0x3F])  // 1.5
        let c = try XCTUnwrap(dense.packedSparse(as: .csr))
        XCTAssertEqual(c.params, EncodingParams(valueEncoding: .f32, indexWidth: 8))
        // row_ptr at 0; col_idx (gap - 1) at 64: column 1 -> 1, column 9 -> 7, column 0 -> 0; values at 128.
        XCTAssertEqual(Array(c.payload[0 ..< 16]), [0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
        XCTAssertEqual(Array(c.payload[64 ..< 67]), [1, 7, 0])
        XCTAssertEqual(c.payload.count, 128 + 12)
        // q8 asymmetric: values, then scale and zero, each 64-aligned.
        let l = try XCTUnwrap(SparseLayout(encoding: .csr, rows: 3, cols: 300, params: .init(symmetric: false, valueEncoding: .q8, indexWidth: 16), nnz: 70))
        XCTAssertEqual([l.rowPointerOffset, l.indexOffset, l.valueOffset, l.scaleOffset, l.zeroOffset, l.totalBytes], [0, 64, 256, 384, 448, 451])
    }

    func testWideGapsFallBackToSixteenBitIndices() throws {
        var v = [Float](repeating: 0, count: 2 * 600)
        v[3] = 1; v[3 + 257] = 2; v[600 + 599] = 3
        let c = try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [2, 600], values: v).packedSparse(as: .csr))
        XCTAssertEqual(c.params.indexWidth, 16)
        XCTAssertEqual(decode(c), v)
        var ok = v
        ok[3 + 257] = 0; ok[3 + 256] = 2  // a gap of exactly 256 still fits 8 bits
        ok[600 + 599] = 0; ok[600 + 255] = 3  // the first column of a row counts from -1
        XCTAssertEqual(EncodedTensor.f32(name: "w", shape: [2, 600], values: ok).packedSparse(as: .csr)?.params.indexWidth, 8)
    }

    func testOnlyMatricesOfF32F16Q8Pack() {
        XCTAssertNil(EncodedTensor.f32(name: "b", shape: [4], values: [0, 1, 0, 2]).packedSparse(as: .csr))
        let q4 = EncodedTensor.q4(name: "w", rows: 1, cols: 4, groupSize: 2, u: [8, 8, 9, 8], scales: [1, 1], zeros: nil)
        XCTAssertNil(q4.packedSparse(as: .bitmask))
        XCTAssertNil(q4.sparseCandidates())
    }

    // MARK: file round trip and hostile payloads

    private func writeSparse(_ dir: String, deflate: Bool = false) throws -> (path: String, csr: EncodedTensor, bitmask: EncodedTensor) {
        let v = matrix(rows: 5, cols: 19, sparsity: 0.6, seed: 99)
        let dense = S.denseEncodings(v, rows: 5, cols: 19)
        let csr = try XCTUnwrap(dense[2].packedSparse(as: .csr)), bm = try XCTUnwrap(dense[3].packedSparse(as: .bitmask))
        var a = csr, b = bm
        a.name = "a.csr"; b.name = "b.bitmask"
        let path = dir + "/s.edge"
        let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance, deflate: deflate)
        try w.add(a)
        try w.add(b, nnz: b.nnz)
        try w.finish()
        return (path, a, b)
    }

    func testWriterAndReaderRoundTrip() throws {
        let dir = try S.scratchFolder(self)
        for deflate in [false, true] {
            let (path, a, b) = try writeSparse(dir, deflate: deflate)
            try S.assertHolds(path, [a, b])
        }
    }

    func testWriterRefusesInconsistentSparseTensors() throws {
        let dir = try S.scratchFolder(self)
        let (_, a, _) = try writeSparse(dir)
        let w = try EdgeWriter(path: dir + "/w.edge", config: S.config, provenance: S.provenance)
        XCTAssertThrowsError(try w.add(a, nnz: (a.nnz ?? 0) + 1)) { XCTAssertTrue("\($0)".contains("nnz"), "\($0)") }
        var noNNZ = a
        noNNZ.nnz = nil
        XCTAssertThrowsError(try w.add(noNNZ)) {
            XCTAssertEqual($0 as? EdgeFormatError, .badTensor(file: dir + "/w.edge", tensor: "a.csr", field: "nnz", why: "is missing; csr needs it (its size depends on it)"))
        }
        var lying = a
        lying.payload[0] = 1  // row_ptr[0]
        XCTAssertThrowsError(try w.add(lying)) {
            guard case .badTensor(_, "a.csr", "payload", _)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
        }
    }

    /// The layout of a tensor entry (for `S.assertPayloadEditsRefused`).
    private func layoutOf(_ e: TensorEntry) throws -> SparseLayout {
        try XCTUnwrap(SparseLayout(encoding: e.encoding, rows: e.shape[0], cols: e.shape[1], params: e.params, nnz: e.nnz ?? -1))
    }

    func testHostilePayloadsAreRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let (path, _, _) = try writeSparse(dir)
        let original = try S.bytes(path)
        let cases: [(String, String, (inout [UInt8], SparseLayout) -> Void)] = [
            ("a.csr", "row 0 holds 255", { p, l in p[l.rowPointerOffset + 4] = 0xFF }),                              // lying row pointer (too many in row 0)
            ("a.csr", "row_ptr[5] is", { p, l in S.putLE(UInt32(l.nnz - 1), into: &p, at: l.rowPointerOffset + 20) }),  // does not end at nnz
            ("a.csr", "column", { p, l in p[l.indexOffset] = 200 }),                                           // column out of range
            ("b.bitmask", "bits set", { p, l in p[0] ^= 0x01 }),                                             // popcount mismatch
            ("b.bitmask", "past the last column", { p, l in  // a bit beyond column 18 of row 0, one fewer before it
                if let b = (0 ..< 3).first(where: { p[$0] != 0 }) { p[b] &= p[b] &- 1 }  // clears its lowest set bit
                p[2] |= 0x80
            }),
        ]
        try S.assertPayloadEditsRefused(original, path, layout: layoutOf, cases)
        // A missing nnz is refused before any byte is read.
        try S.put(original, path)
        try S.editTensor(path, "a.csr") { $0["nnz"] = nil }
        XCTAssertEqual(S.openError(path), .badTensor(file: path, tensor: "a.csr", field: "nnz", why: "is missing; csr needs it (its size depends on it)"))
        try S.put(original, path)
        try S.editTensor(path, "b.bitmask") { $0["params"] = ["value_encoding": "q4", "symmetric": true] }
        guard case .badTensor(_, "b.bitmask", "params.value_encoding", _)? = S.openError(path) else { return XCTFail() }
        try S.put(original, path)
        try S.editTensor(path, "a.csr") { $0["params"] = ["value_encoding": "q8", "symmetric": true, "index_width": 12] }
        guard case .badTensor(_, "a.csr", "params.index_width", _)? = S.openError(path) else { return XCTFail() }
    }
}
