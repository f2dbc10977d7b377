@testable import EdgeFormat
import Foundation
import XCTest

/// The packed N:M encoding (`nm`): the layout byte by byte (the spec's example), round trips from
/// every dense value encoding over patterns and odd shapes (tail groups), conformance, the
/// writer/reader path, and hostile payloads and params refused in one line naming the tensor.
final class NMLayoutTests: XCTestCase {
    typealias S = EdgeTestSupport

    /// A [rows, cols] matrix in -2...2 that satisfies n:m (tail group: min(n, tail)); in each group a
    /// pseudo-random number (0...n) of positions is non-zero, and row 1 is empty when there are 3+ rows.
    static func matrix(rows: Int, cols: Int, n: Int, m: Int, seed: UInt64) -> [Float] {
        var r = S.Rand(seed)
        var v = [Float](repeating: 0, count: rows * cols)
        for row in 0 ..< rows where !(rows >= 3 && row == 1) {
            var c0 = 0
            while c0 < cols {
                let len = min(m, cols - c0)
                let keep = Int(r.next() % UInt64(min(n, len) + 1))
                var positions = Array(0 ..< len)
                for i in 0 ..< keep { positions.swapAt(i, i + Int(r.next() % UInt64(len - i))) }
                for j in positions[0 ..< keep] {
                    var x = r.float(-2, 2)
                    if x == 0 { x = 1 }
                    v[row * cols + c0 + j] = x
                }
                c0 += len
            }
        }
        return v
    }

    private func decode(_ t: EncodedTensor) -> [Float] { S.decoded(t) }

    private func problem(_ t: EncodedTensor) -> String? {
        t.payload.withUnsafeBytes { nmPayloadProblem($0, shape: t.shape, params: t.params) }
    }

    /// The example of docs/edge-format.md ("nm"), byte by byte.
    func testLayoutBytesOfTheSpecExample() throws {
        let v: [Float] = [0, 1.5, 0, -2, 4,
                          3, 0, 0, 0, 0]
        let p = try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [2, 5], values: v).packedNM(n: 2, m: 4))
        XCTAssertEqual(p.encoding, .nm)
        XCTAssertEqual(p.params, EncodingParams(valueEncoding: .f32, n: 2, m: 4))
        XCTAssertEqual(p.nnz, 4)
        // 3 slots per row (2 + min(2, 1)), 2-bit indices: 6 bits, one byte per row.
        XCTAssertEqual(Array(p.payload[0 ..< 2]), [0x0D, 0x04])  // row 0: 1, 3 | 0; row 1: 0, 1 | 0
        XCTAssertEqual(p.payload.count, 64 + 6 * 4)
        let values = (0 ..< 6).map { i in p.payload.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 64 + 4 * i, as: Float.self) } }
        XCTAssertEqual(values, [1.5, -2, 4, 3, 0, 0])
        XCTAssertEqual(decode(p), v)
        // q8 asymmetric with 3-bit indices that straddle bytes: values, scale, zero each 64-aligned.
        let l = try XCTUnwrap(NMLayout(rows: 3, cols: 300, params: .init(symmetric: false, valueEncoding: .q8, n: 3, m: 8)))
        XCTAssertEqual([l.indexBits, l.slotsPerRow, l.indexRowBytes, l.valueOffset, l.scaleOffset, l.zeroOffset, l.totalBytes],
                       [3, 37 * 3 + 3, 43, 192, 192 + 384, 640, 643])
        XCTAssertEqual(NMLayout(rows: 1, cols: 1, params: .init(valueEncoding: .f32, n: 1, m: 2))?.indexBits, 1)
        XCTAssertEqual(NMLayout(rows: 1, cols: 1, params: .init(valueEncoding: .f32, n: 1, m: 256))?.indexBits, 8)
        XCTAssertEqual(NMLayout(rows: 1, cols: 1, params: .init(valueEncoding: .f32, n: 3, m: 5))?.indexBits, 3)
    }

    func testRoundTripsOverPatternsShapesAndValueEncodings() throws {
        var seed: UInt64 = 1
        for (n, m) in [(2, 4), (1, 4), (3, 4), (1, 2), (2, 8), (3, 5), (4, 16)] {
            for (rows, cols) in [(1, 1), (1, 7), (3, 8), (5, 9), (4, 17), (7, 33), (2, 300), (9, 64)] {
                seed += 1
                let v = Self.matrix(rows: rows, cols: cols, n: n, m: m, seed: seed)
                for dense in S.denseEncodings(v, rows: rows, cols: cols) {
                    let tag = "\(n):\(m) of \(dense.encoding) \(dense.params) [\(rows), \(cols)]"
                    let want = decode(dense)
                    XCTAssertTrue(dense.conformsToNM(n: n, m: m), tag)
                    let p = try XCTUnwrap(dense.packedNM(n: n, m: m), tag)
                    XCTAssertEqual(p.nnz, want.filter { $0 != 0 }.count, tag)
                    XCTAssertEqual(p.params.valueEncoding, dense.encoding, tag)
                    XCTAssertEqual(p.params.symmetric, dense.params.symmetric, tag)
                    XCTAssertEqual(expectedPayloadBytes(encoding: .nm, shape: p.shape, params: p.params), p.payload.count, tag)
                    XCTAssertNil(problem(p), tag)
                    XCTAssertEqual(decode(p), want, tag)
                    let l = NMLayout(rows: p.shape[0], cols: p.shape[1], params: p.params)!
                    var row = [Float](repeating: 7, count: cols)
                    for r in 0 ..< rows {
                        p.payload.withUnsafeBytes { bytes in row.withUnsafeMutableBufferPointer { l.decodeRow(r, bytes, into: $0.baseAddress!) } }
                        XCTAssertEqual(row, Array(want[r * cols ..< (r + 1) * cols]), tag + " row \(r)")
                    }
                }
            }
        }
    }

    func testNonConformingTensorsDoNotPack() throws {
        // 3 non-zeros in the first group of 4.
        let v: [Float] = [1, 2, 3, 0, 0, 0, 0, 0]
        let t = EncodedTensor.f32(name: "w", shape: [1, 8], values: v)
        XCTAssertFalse(t.conformsToNM(n: 2, m: 4))
        XCTAssertNil(t.packedNM(n: 2, m: 4))
        XCTAssertTrue(t.conformsToNM(n: 3, m: 4))
        XCTAssertTrue(t.conformsToNM(n: 3, m: 8))
        // A tail of 1 column holds at most one value: 2:4 with [0, 0, 0, 0, 5] conforms, 1:4 of [1, 0, 0, 0, 5, 0] too.
        XCTAssertTrue(EncodedTensor.f32(name: "w", shape: [1, 5], values: [0, 0, 0, 0, 5]).conformsToNM(n: 2, m: 4))
        XCTAssertFalse(EncodedTensor.f32(name: "w", shape: [1, 6], values: [1, 0, 0, 0, 5, 6]).conformsToNM(n: 1, m: 4))
        // Zero-valued q8 codes (code == zero point) do not count.
        let q = EncodedTensor.q8(name: "w", rows: 1, cols: 4, q: [9, 9, 9, 10], scales: [0.5], zeros: [9])
        XCTAssertTrue(q.conformsToNM(n: 1, m: 4))
        XCTAssertEqual(decode(try XCTUnwrap(q.packedNM(n: 1, m: 4))), [0, 0, 0, 0.5])
        // Vectors and q4 do not pack.
        XCTAssertNil(EncodedTensor.f32(name: "b", shape: [4], values: [0, 1, 0, 0]).packedNM(n: 1, m: 4))
        XCTAssertNil(EncodedTensor.q4(name: "w", rows: 1, cols: 4, groupSize: 2, u: [8, 8, 9, 8], scales: [1, 1], zeros: nil).packedNM(n: 1, m: 4))
        // The best candidate is the smallest conforming pattern.
        let sparse = EncodedTensor.f32(name: "w", shape: [4, 64], values: Self.matrix(rows: 4, cols: 64, n: 1, m: 4, seed: 3))
        XCTAssertEqual(sparse.bestNMCandidate()?.n, 1)
        XCTAssertEqual(sparse.bestNMCandidate()?.m, 4)
        XCTAssertNil(EncodedTensor.f32(name: "w", shape: [1, 8], values: [1, 1, 1, 1, 1, 1, 1, 0]).bestNMCandidate())
    }

    // MARK: file round trip and hostile payloads

    private func writeNM(_ dir: String, deflate: Bool = false) throws -> (path: String, tensors: [EncodedTensor]) {
        let v = Self.matrix(rows: 5, cols: 19, n: 2, m: 4, seed: 99)
        let dense = S.denseEncodings(v, rows: 5, cols: 19)
        var a = try XCTUnwrap(dense[2].packedNM(n: 2, m: 4)), b = try XCTUnwrap(dense[1].packedNM(n: 2, m: 4))
        var c = try XCTUnwrap(EncodedTensor.f32(name: "c", shape: [3, 13], values: Self.matrix(rows: 3, cols: 13, n: 3, m: 5, seed: 7)).packedNM(n: 3, m: 5))
        a.name = "a.nm.q8"; b.name = "b.nm.f16"; c.name = "c.nm35"
        let path = dir + "/n.edge"
        let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance, deflate: deflate)
        try w.add(a)
        try w.add(b, nnz: b.nnz)
        var noNNZ = c
        noNNZ.nnz = nil  // informational for nm: may be absent
        try w.add(noNNZ)
        try w.finish()
        return (path, [a, b, noNNZ])
    }

    func testWriterAndReaderRoundTrip() throws {
        let dir = try S.scratchFolder(self)
        for deflate in [false, true] {
            let (path, tensors) = try writeNM(dir, deflate: deflate)
            XCTAssertTrue(tensors.allSatisfy { $0.encoding == .nm })
            try S.assertHolds(path, tensors)
        }
    }

    func testWriterRefusesLyingNMTensors() throws {
        let dir = try S.scratchFolder(self)
        let (_, tensors) = try writeNM(dir)
        let w = try EdgeWriter(path: dir + "/w.edge", config: S.config, provenance: S.provenance)
        var lying = tensors[0]
        lying.payload[0] = 0b0000_0000  // group 0 of row 0: indices 0, 0
        XCTAssertThrowsError(try w.add(lying)) {
            guard case let .badTensor(_, "a.nm.q8", "payload", why)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("not above"), why)
        }
        var short = tensors[0]
        short.payload.removeLast()
        XCTAssertThrowsError(try w.add(short)) {
            guard case .badLength(_, .tensor("a.nm.q8"), "payload", _, _)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
        }
    }

    /// The layout of a tensor entry (for `S.assertPayloadEditsRefused`).
    private func layoutOf(_ e: TensorEntry) throws -> NMLayout {
        try XCTUnwrap(NMLayout(rows: e.shape[0], cols: e.shape[1], params: e.params))
    }

    func testHostilePayloadsAndParamsAreRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let (path, _) = try writeNM(dir)
        let original = try S.bytes(path)
        // 19 columns of 2:4: 4 full groups + a tail of 3 (2 slots) = 10 slots, 20 bits, 3 bytes per row.
        // 13 columns of 3:5: 2 full groups + a tail of 3 (3 slots) = 9 slots of 3 bits, 27 bits, 4 bytes per row.
        let cases: [(String, String, (inout [UInt8], NMLayout) -> Void)] = [
            ("a.nm.q8", "not above", { p, _ in p[0] = 0b0000_0101 }),                 // indices 1, 1
            ("a.nm.q8", "not above", { p, _ in p[0] = 0b0000_0011 | (p[0] & 0xF0) }), // indices 3, 0
            ("a.nm.q8", "row 1, group 3", { p, _ in p[4] = 0b1010_0000 | (p[4] & 0x0F) }), // row 1's 2nd byte: 2, 2
            ("b.nm.f16", "the group has 3 columns", { p, _ in p[2] = 0b0000_1100 }),  // tail (3 columns): indices 0, 3
            ("b.nm.f16", "bits set after its last index", { p, _ in p[5] |= 0x80 }),  // row 1's last byte, past bit 20
            ("c.nm35", "the group has 5 columns", { p, _ in p[0] = (p[0] & 0b1111_1000) | 0b111 }),  // slot 0 of group 0: index 7
            ("c.nm35", "not above", { p, _ in                                        // slot 2 (bits 6-8) set to 0 < slot 1
                p[0] &= 0b0011_1111; p[1] &= 0b1111_1110
                p[0] = (p[0] & 0b1100_0111) | (1 << 3)                                   // slot 1 = 1, slot 0 = 0
                p[0] &= 0b1111_1000
            }),
        ]
        try S.assertPayloadEditsRefused(original, path, layout: layoutOf, cases)
        // Lying params: each refused before any payload byte is read, naming the tensor and the field.
        let params: [(JSONValue, String)] = [
            (["value_encoding": "q8", "symmetric": true, "n": 2], "params.m"),
            (["value_encoding": "q8", "symmetric": true, "m": 4], "params.n"),
            (["value_encoding": "q8", "symmetric": true, "n": 4, "m": 4], "params.n"),
            (["value_encoding": "q8", "symmetric": true, "n": 0, "m": 4], "params.n"),
            (["value_encoding": "q8", "symmetric": true, "n": 2, "m": 512], "params.m"),
            (["value_encoding": "q8", "symmetric": true, "n": 2, "m": 1], "params.m"),
            (["value_encoding": "q4", "symmetric": true, "n": 2, "m": 4], "params.value_encoding"),
            (["symmetric": true, "n": 2, "m": 4], "params.value_encoding"),
            (["value_encoding": "q8", "n": 2, "m": 4], "params.symmetric"),
            (["value_encoding": "q8", "symmetric": true, "n": 2, "m": 4, "index_width": 8], "params.index_width"),
            (["value_encoding": "q8", "symmetric": true, "n": 2, "m": 4, "group_size": 4], "params.group_size"),
        ]
        for (p, field) in params {
            try S.put(original, path)
            try S.editTensor(path, "a.nm.q8") { $0["params"] = p }
            let e = S.openError(path)
            guard case .badTensor(_, "a.nm.q8", field, _)? = e else { XCTFail("\(p): \(String(describing: e))"); continue }
        }
        // A shape that lies about the size.
        try S.put(original, path)
        try S.editTensor(path, "a.nm.q8") { $0["shape"] = [5, 300] }
        guard case .badLength(_, .tensor("a.nm.q8"), "length", _, 148)? = S.openError(path) else { return XCTFail() }
        // n 1 instead of 2 happens to imply the same size (alignment), but not the same index bits.
        try S.put(original, path)
        try S.editTensor(path, "a.nm.q8") { $0["params"] = ["value_encoding": "q8", "symmetric": true, "n": 1, "m": 4] }
        guard case let .badTensor(_, "a.nm.q8", "payload", why)? = S.openError(path) else { return XCTFail() }
        XCTAssertTrue(why.contains("bits set after"), why)
        // n and m belong to nm only.
        try S.put(original, path)
        try S.editTensor(path, "a.nm.q8") { $0["encoding"] = "bitmask"; $0["nnz"] = 3 }
        let wrongEncoding = S.openError(path)
        guard case .badTensor(_, "a.nm.q8", "params.n", _)? = wrongEncoding else { return XCTFail("\(String(describing: wrongEncoding))") }
        // A 1-D nm tensor.
        try S.put(original, path)
        try S.editTensor(path, "a.nm.q8") { $0["shape"] = [95] }
        guard case .badTensor(_, "a.nm.q8", "shape", _)? = S.openError(path) else { return XCTFail() }
    }

    /// Random byte flips in the index area are refused or decoded, never a crash.
    func testRandomIndexCorruptionNeverTraps() throws {
        let v = Self.matrix(rows: 6, cols: 23, n: 3, m: 8, seed: 5)
        let t = try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [6, 23], values: v).packedNM(n: 3, m: 8))
        let l = NMLayout(rows: t.shape[0], cols: t.shape[1], params: t.params)!
        var r = S.Rand(17)
        var refused = 0
        for _ in 0 ..< 500 {
            var c = t
            let at = Int(r.next() % UInt64(l.rows * l.indexRowBytes))
            c.payload[at] ^= UInt8(1 + r.next() % 255)
            if problem(c) == nil { _ = decode(c) } else { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 0)
    }
}
