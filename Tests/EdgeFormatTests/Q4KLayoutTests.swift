@testable import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// The k-quant style 4-bit encoding (`q4k`): the layout byte by byte (the spec's example), offsets
/// and sizes over odd shapes, round trips through a file, hostile payloads and params refused in
/// one line naming the tensor, and its format version (3).
final class Q4KLayoutTests: XCTestCase {
    typealias S = EdgeTestSupport

    private func problem(_ t: EncodedTensor) -> String? {
        t.payload.withUnsafeBytes { groupedPayloadProblem($0, encoding: .q4k, shape: t.shape, params: t.params) }
    }

    /// The spec's example (docs/edge-format.md, "q4k"): shape [2, 5], g = 2, b = 6.
    static func specExample() -> EncodedTensor {
        .q4k(name: "w", rows: 2, cols: 5, groupSize: 2, subBits: 6, u: [0, 15, 3, 5, 7, 1, 2, 15, 15, 4],
             sc: [1, 2, 63, 8, 0, 5], mn: [0, 4, 1, 3, 0, 63], superScale: [0.5, 0.125], superMin: [0.25, 0.5])
    }
    static let specExampleValues: [Float] = [0, 7.5, 2, 4, 220.25, -0.5, 0.5, 0, 0, -29]

    /// The example of docs/edge-format.md ("q4k"), byte by byte.
    func testLayoutBytesOfTheSpecExample() throws {
        let t = Self.specExample()
        let l = Q4KLayout(rows: 2, cols: 5, groupSize: 2, subBits: 6)
        XCTAssertEqual([l.groups, l.rowBytes, l.subRowBytes, l.subOffset, l.superOffset, l.totalBytes], [3, 3, 5, 64, 128, 136])
        XCTAssertEqual(t.payload.count, 136)
        XCTAssertEqual(Array(t.payload[0 ..< 6]), EdgeGoldenTests.hex("f0 53 07  21 ff 04"))
        XCTAssertEqual(Array(t.payload[64 ..< 74]), EdgeGoldenTests.hex("01 20 10 7f 00  c8 00 00 c5 0f"))
        XCTAssertEqual(Array(t.payload[128 ..< 136]), EdgeGoldenTests.hex("00 38 00 34  00 30 00 38"))
        let listed = [0 ..< 6, 64 ..< 74, 128 ..< 136]
        for i in t.payload.indices where !listed.contains(where: { $0.contains(i) }) { XCTAssertEqual(t.payload[i], 0, "byte \(i)") }
        XCTAssertEqual(S.decoded(t), Self.specExampleValues)
        XCTAssertNil(problem(t))
        XCTAssertEqual(t.params, EncodingParams(groupSize: 2, subBits: 6))
        XCTAssertEqual(t.layout, .q4k(l))
        t.payload.withUnsafeBytes { p in
            XCTAssertTrue(l.subCodes(p, row: 0, group: 2) == (63, 1))
            XCTAssertTrue(l.subCodes(p, row: 1, group: 0) == (8, 3))
            XCTAssertTrue(l.subCodes(p, row: 1, group: 2) == (5, 63))
        }

        // b = 8: the sub-parameters are bytes sc, mn, sc, mn, ...; no padding bits.
        let b8 = EncodedTensor.q4k(name: "b8", rows: 1, cols: 3, groupSize: 2, subBits: 8, u: [1, 2, 3],
                                   sc: [255, 0], mn: [7, 0], superScale: [1], superMin: [2])
        XCTAssertEqual(b8.payload.count, 132)
        XCTAssertEqual(Array(b8.payload[0 ..< 2]), [0x21, 0x03])
        XCTAssertEqual(Array(b8.payload[64 ..< 68]), [255, 7, 0, 0])  // the second group's sc and mn are 0
        XCTAssertEqual(Array(b8.payload[128 ..< 132]), EdgeGoldenTests.hex("00 3c 00 40"))
        XCTAssertEqual(S.decoded(b8), [241, 496, 0])
    }

    /// Offsets and sizes over odd shapes: odd cols, a short last group, b = 6 and 8, sub-parameter
    /// rows with and without padding bits.
    func testOffsetsAndSizes() {
        let cases: [(rows: Int, cols: Int, g: Int, b: Int, expected: [Int])] = [
            // groups, rowBytes, subRowBytes, subOffset, superOffset, totalBytes
            (2, 5, 2, 6, [3, 3, 5, 64, 128, 136]),       // 36 sub bits a row: 4 padding bits
            (3, 21, 8, 6, [3, 11, 5, 64, 128, 140]),     // odd cols, the last group 5 of 8
            (5, 70, 32, 8, [3, 35, 6, 192, 256, 276]),   // the last group 6 of 32
            (1, 1, 2, 8, [1, 1, 2, 64, 128, 132]),       // one code in one group
            (4, 33, 32, 6, [2, 17, 3, 128, 192, 208]),   // 24 sub bits a row: no padding
            (7, 100, 6, 6, [17, 50, 26, 384, 576, 604]), // 204 sub bits a row
            (2, 64, 64, 8, [1, 32, 2, 64, 128, 136]),
        ]
        for c in cases {
            let l = Q4KLayout(rows: c.rows, cols: c.cols, groupSize: c.g, subBits: c.b)
            XCTAssertEqual([l.groups, l.rowBytes, l.subRowBytes, l.subOffset, l.superOffset, l.totalBytes], c.expected, "\(c)")
            XCTAssertEqual(PayloadLayout(encoding: .q4k, shape: [c.rows, c.cols], params: .init(groupSize: c.g, subBits: c.b)), .q4k(l))
            XCTAssertEqual(expectedPayloadBytes(encoding: .q4k, shape: [c.rows, c.cols], params: .init(groupSize: c.g, subBits: c.b)),
                           c.expected[5])
        }
        // Bits per weight: 4 + 2b/g + 32/cols.
        for (b, bits) in [(6, 4.375), (8, 4.5)] {
            let l = Q4KLayout(rows: 4096, cols: 4096, groupSize: 32, subBits: b)
            XCTAssertEqual(Double(l.totalBytes * 8) / Double(4096 * 4096), bits + 32.0 / 4096, accuracy: 1e-6)
        }
    }

    func testLayoutNeedsAMatrixAnEvenGroupAndSubBits6Or8() {
        let ok = EncodingParams(groupSize: 32, subBits: 6)
        XCTAssertNotNil(PayloadLayout(encoding: .q4k, shape: [2, 8], params: ok))
        XCTAssertNil(PayloadLayout(encoding: .q4k, shape: [16], params: ok), "q4k needs a matrix")
        XCTAssertNil(PayloadLayout(encoding: .q4k, shape: [2, 8], params: .init(groupSize: 32)), "sub_bits missing")
        XCTAssertNil(PayloadLayout(encoding: .q4k, shape: [2, 8], params: .init(subBits: 6)), "group_size missing")
        for g in [0, 1, 3, 33, (1 << 24) + 2] {
            XCTAssertNil(PayloadLayout(encoding: .q4k, shape: [2, 8], params: .init(groupSize: g, subBits: 6)), "group_size \(g)")
        }
        XCTAssertNotNil(PayloadLayout(encoding: .q4k, shape: [2, 8], params: .init(groupSize: 1 << 24, subBits: 8)))
        for b in [0, 4, 5, 7, 9, 16] {
            XCTAssertNil(PayloadLayout(encoding: .q4k, shape: [2, 8], params: .init(groupSize: 2, subBits: b)), "sub_bits \(b)")
        }
        XCTAssertEqual(Encoding.q4k.formatVersion, 3)
        XCTAssertTrue(Encoding.q4k.hasStructure)
        XCTAssertEqual(Encoding(rawValue: "q4k"), .q4k)
    }

    /// Random codes over shapes where sub fields straddle bytes, groups are short, single rows and
    /// columns: encode, write, read back; `decodeRow` gives the spec's formula.
    func testRoundTripsOverShapesGroupSizesAndSubBits() throws {
        let dir = try S.scratchFolder(self)
        var samples: [S.Sample] = []
        var seed: UInt64 = 200
        for (rows, cols) in [(1, 1), (1, 8), (3, 7), (2, 9), (5, 64), (4, 65), (3, 100)] {
            for g in [2, 6, 32] {
                for b in [6, 8] {
                    seed += 1
                    samples.append(S.q4k("q4k.\(rows)x\(cols).g\(g).b\(b)", rows: rows, cols: cols, groupSize: g, subBits: b, seed: seed))
                }
            }
        }
        for s in samples {
            XCTAssertEqual(S.decoded(s.tensor), s.values, s.tensor.name)
            XCTAssertNil(problem(s.tensor), s.tensor.name)
        }
        for deflate in [false, true] {
            let path = dir + "/q4k-\(deflate).edge"
            let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance, deflate: deflate)
            for s in samples { try w.add(s.tensor) }
            try w.finish()
            try S.assertHolds(path, samples.map(\.tensor))
            let f = try EdgeFile(path: path)
            XCTAssertEqual(f.preamble.version, 3)
            for s in samples {
                let e = try XCTUnwrap(f.entry(named: s.tensor.name))
                guard case let .q4k(l) = try f.layout(of: e) else { return XCTFail(s.tensor.name) }
                let bytes = Array(try f.payload(of: e))
                var row = [Float](repeating: .nan, count: l.cols)
                for r in 0 ..< l.rows {
                    bytes.withUnsafeBytes { p in row.withUnsafeMutableBufferPointer { l.decodeRow(r, p, into: $0.baseAddress!) } }
                    XCTAssertEqual(row, Array(s.values[r * l.cols ..< (r + 1) * l.cols]), "\(s.tensor.name) row \(r)")
                }
            }
        }
    }

    /// A value needing rounding: d*u is exact, so w has one rounding (the subtraction) and equals the fma.
    func testOneRoundingLikeAnFMA() {
        // D = 0.1 rounded to binary16 (0x2e66), M = 1/3 rounded (0x3555): products with sc, mn exact in binary32.
        let D = Float(Float16(bitPattern: 0x2E66)), M = Float(Float16(bitPattern: 0x3555))
        let t = EncodedTensor.q4k(name: "w", rows: 1, cols: 16, groupSize: 16, subBits: 8, u: (0 ..< 16).map(UInt8.init),
                                  sc: [201], mn: [177], superScale: [D], superMin: [M])
        let d = D * 201, m = M * 177
        XCTAssertEqual(Double(d), Double(D) * 201)
        XCTAssertEqual(Double(m), Double(M) * 177)
        let v = S.decoded(t)
        for u in 0 ..< 16 {
            XCTAssertEqual(v[u], Float((Double(d) * Double(u) - Double(m))), "u \(u): one rounding of the exact value")
            XCTAssertEqual(v[u], (-m).addingProduct(d, Float(u)), "u \(u): the fma's bits")
        }
    }

    /// The q4k layout of a tensor entry (for `S.assertPayloadEditsRefused`).
    private func layoutOf(_ e: TensorEntry) throws -> Q4KLayout {
        guard case let .q4k(l)? = PayloadLayout(encoding: e.encoding, shape: e.shape, params: e.params) else { throw XCTSkip("not q4k") }
        return l
    }

    func testHostilePayloadsAreRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/h.edge"
        // a: 21 columns (odd: a padding nibble ending each code row), groups of 8: 3 per row, 36 sub bits
        // a row in 5 bytes (bits 36...39 padding). b: b = 8, 64 columns, no padding anywhere.
        let samples = [S.q4k("a.q4k", rows: 3, cols: 21, groupSize: 8, subBits: 6, seed: 1),
                       S.q4k("b.q4k.b8", rows: 2, cols: 64, groupSize: 32, subBits: 8, seed: 2)]
        try S.write(samples, to: path, deflate: false)
        XCTAssertEqual(try EdgeFile(path: path).preamble.version, 3)
        let original = try S.bytes(path)
        let cases: [(String, String, (inout [UInt8], Q4KLayout) -> Void)] = [
            ("a.q4k", "q4k row 1: super-scale D 0x7c00 is not finite", { p, l in p[l.superOffset + 4] = 0x00; p[l.superOffset + 5] = 0x7C }),
            ("a.q4k", "q4k row 2: super-min M 0x7e01 is not finite", { p, l in p[l.superOffset + 10] = 0x01; p[l.superOffset + 11] = 0x7E }),
            ("a.q4k", "q4k row 0: super-scale D 0x8000 is negative", { p, l in p[l.superOffset] = 0x00; p[l.superOffset + 1] = 0x80 }),  // -0
            ("b.q4k.b8", "q4k row 1: super-min M 0xbc00 is negative", { p, l in p[l.superOffset + 6] = 0x00; p[l.superOffset + 7] = 0xBC }), // -1
            ("b.q4k.b8", "super-scale D 0xfc00 is not finite", { p, l in p[l.superOffset] = 0x00; p[l.superOffset + 1] = 0xFC }),         // -Inf
            ("a.q4k", "q4k row 2: sub-parameter padding bits 36...39 are not 0", { p, l in p[l.subOffset + 3 * l.subRowBytes - 1] |= 0x80 }),
            ("a.q4k", "q4k row 0: sub-parameter padding bits 36...39", { p, l in p[l.subOffset + l.subRowBytes - 1] |= 0x10 }),
            ("a.q4k", "q4k row 1: code padding bits 84...87 of the row are not 0", { p, l in p[2 * l.rowBytes - 1] |= 0x10 }),
        ]
        try S.assertPayloadEditsRefused(original, path, layout: layoutOf, cases)
        // Every other sub and code bit is data: setting it is read, not refused.
        for s in samples {
            var t = s.tensor
            guard case let .q4k(l)? = t.layout else { return XCTFail(t.name) }
            for r in 0 ..< l.rows { t.payload[l.subOffset + r * l.subRowBytes] ^= 0x3F; t.payload[r * l.rowBytes] ^= 0xFF }
            XCTAssertNil(problem(t), t.name)
        }

        // The writer checks the payload too; a deflated one is read back.
        let packedPath = dir + "/hz.edge"
        let good = EncodedTensor.q4k(name: "z", rows: 64, cols: 63, groupSize: 16, subBits: 6, u: .init(repeating: 9, count: 64 * 63),
                                     sc: .init(repeating: 2, count: 64 * 4), mn: .init(repeating: 1, count: 64 * 4),
                                     superScale: .init(repeating: 0.5, count: 64), superMin: .init(repeating: 3, count: 64))
        var negative = good
        negative.payload[Q4KLayout(rows: 64, cols: 63, groupSize: 16, subBits: 6).superOffset + 4 * 5 + 3] |= 0x80
        var padded = good
        padded.payload[32 * 5 - 1] |= 0xF0
        let w = try EdgeWriter(path: packedPath, config: S.config, provenance: S.provenance, deflate: true)
        for (bad, words) in [(negative, "row 5: super-min M 0xc200 is negative"), (padded, "row 4: code padding bits 252...255")] {
            XCTAssertThrowsError(try w.add(bad), "the writer checks the structure too") {
                guard case let .badTensor(_, "z", "payload", why)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
                XCTAssertTrue(why.contains(words), why)
            }
        }
        try w.add(good)
        try w.finish()
        let f = try EdgeFile(path: packedPath)
        XCTAssertEqual(f.entry(named: "z")?.compression, .deflate)
        XCTAssertEqual(try f.floats(of: f.entry(named: "z")!), .init(repeating: 9 - 3, count: 64 * 63))  // (0.5*2)*9 - 3*1
    }

    /// Bad params, shapes and lengths: refused before any payload byte is read, naming the field.
    func testHostileParamsAreRefusedNamingTheField() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/p.edge"
        try S.write([S.q4k("a.q4k", rows: 3, cols: 21, groupSize: 8, subBits: 6, seed: 1),
                     S.q4("b.q4", rows: 2, cols: 9, groupSize: 4, symmetric: false, seed: 2)], to: path, deflate: false)
        let original = try S.bytes(path)
        let cases: [(String, JSONValue, String)] = [
            ("a.q4k", ["group_size": 8, "sub_bits": 4], "params.sub_bits"),
            ("a.q4k", ["group_size": 8, "sub_bits": 7], "params.sub_bits"),
            ("a.q4k", ["group_size": 8, "sub_bits": 16], "params.sub_bits"),
            ("a.q4k", ["group_size": 8], "params.sub_bits"),
            ("a.q4k", ["group_size": 3, "sub_bits": 6], "params.group_size"),
            ("a.q4k", ["group_size": 0, "sub_bits": 6], "params.group_size"),
            ("a.q4k", ["group_size": .number(Double(1 << 25)), "sub_bits": 6], "params.group_size"),
            ("a.q4k", ["sub_bits": 6], "params.group_size"),
            ("a.q4k", ["group_size": 8, "sub_bits": 6, "symmetric": false], "params.symmetric"),
            ("a.q4k", ["group_size": 8, "sub_bits": 6, "n": 2], "params.n"),
            ("a.q4k", ["group_size": 8, "sub_bits": 6, "value_encoding": "f16"], "params.value_encoding"),
            ("b.q4", ["group_size": 4, "symmetric": false, "sub_bits": 6], "params.sub_bits"),
        ]
        for (name, p, field) in cases {
            try S.put(original, path)
            try S.editTensor(path, name) { $0["params"] = p }
            let e = S.openError(path)
            guard case .badTensor(_, name, field, _)? = e else { XCTFail("\(p): \(String(describing: e))"); continue }
        }
        try S.put(original, path)
        try S.editTensor(path, "a.q4k") { $0["shape"] = [63] }
        guard case .badTensor(_, "a.q4k", "shape", _)? = S.openError(path) else { return XCTFail() }
        try S.put(original, path)
        try S.editTensor(path, "a.q4k") { $0["length"] = .number(Double(Q4KLayout(rows: 3, cols: 21, groupSize: 8, subBits: 6).totalBytes - 1)) }
        guard case .badLength(_, .tensor("a.q4k"), "length", _, _)? = S.openError(path) else { return XCTFail() }
        try S.put(original, path)
        try S.editTensor(path, "a.q4k") { $0["shape"] = [3, 200] }  // 100 code bytes a row, not 11
        guard case .badLength(_, .tensor("a.q4k"), "length", _, _)? = S.openError(path) else { return XCTFail() }
    }

    /// q4k came with format version 3: a v1 or v2 file holding one is refused, naming the tensor.
    func testQ4KInAVersion1Or2FileIsRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/v.edge"
        try S.write([S.f32("a", [2, 2], seed: 1), S.q4k("b.q4k", rows: 2, cols: 8, groupSize: 8, subBits: 8, seed: 2)],
                    to: path, deflate: false)
        let original = try S.bytes(path)
        XCTAssertEqual(S.readU64(original, 8) & 0xFFFF_FFFF, 3)
        for version in [UInt32(1), 2] {
            try S.put(original, path)
            var b = original
            S.putLE(version, into: &b, at: 8)
            try S.put(b, path)
            try S.editHeader(path) { tree in
                guard case var .object(o) = tree else { return }
                o["version"] = .number(Double(version))
                tree = .object(o)
            }
            let e = S.openError(path)
            XCTAssertEqual(e, .encodingNeedsNewerVersion(file: path, tensor: "b.q4k", encoding: "q4k", needs: 3, version: version))
            XCTAssertEqual(e?.description, "\(path): tensor 'b.q4k': q4k needs format version 3, the file says \(version)")
            XCTAssertEqual(S.openError(path, verify: false), e, "refused before any payload byte is read")
        }
    }

    /// The independent Python reader decodes the spec's example to the same values and refuses the
    /// q4k rules' breaches naming the tensor.
    func testPythonReaderReadsTheSpecExample() throws {
        guard pythonWithNumpy else { throw XCTSkip("python3 with numpy is not available") }
        let dir = try S.scratchFolder(self)
        let path = dir + "/ex.edge"
        let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance, deflate: false)
        try w.add(Self.specExample())
        try w.finish()
        let r = try runTool("/usr/bin/env", ["python3", scriptPath("edge_read.py"), "--json", path])
        XCTAssertEqual(r.code, 0, r.stderr)
        let doc = try JSONValue.parse(Array(r.stdout.utf8))
        let values = try XCTUnwrap(doc["tensors"]?["w"]?["values"]?.arrayValue).map { Float($0.doubleValue ?? .nan) }
        XCTAssertEqual(values, Self.specExampleValues)
        XCTAssertEqual(doc["tensors"]?["w"]?["encoding"]?.stringValue, "q4k")
    }

    /// Random byte flips anywhere in a payload are refused or decoded, never a crash.
    func testRandomCorruptionNeverTraps() {
        let s = S.q4k("w", rows: 6, cols: 37, groupSize: 16, subBits: 6, seed: 5)
        var r = S.Rand(17)
        var refused = 0
        for _ in 0 ..< 300 {
            var t = s.tensor
            t.payload[Int(r.next() % UInt64(t.payload.count))] ^= UInt8(1 + r.next() % 255)
            if problem(t) != nil { refused += 1; continue }
            XCTAssertEqual(S.decoded(t).count, 6 * 37)
        }
        XCTAssertGreaterThan(refused, 0)
    }
}
