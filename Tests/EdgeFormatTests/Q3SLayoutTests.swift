@testable import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// The 3-bit encoding with sub-coded scales (`q3s`: q3's codes, per group a scale code and a 3-bit zero
/// point under a per-row binary16 super-scale): the layout byte by byte (the spec's example), offsets
/// and sizes, round trips through a file, hostile payloads and params refused in one line naming the
/// tensor, and its format version (4).
final class Q3SLayoutTests: XCTestCase {
    typealias S = EdgeTestSupport

    private func problem(_ t: EncodedTensor) -> String? {
        t.payload.withUnsafeBytes { groupedPayloadProblem($0, encoding: .q3s, shape: t.shape, params: t.params) }
    }

    /// The spec's example (docs/edge-format.md, "q3s"): shape [1, 10], g = 8, b = 6.
    static func specExample() -> EncodedTensor {
        .q3s(name: "w", rows: 1, cols: 10, groupSize: 8, subBits: 6, u: [0, 1, 2, 3, 4, 5, 6, 7, 7, 5], sc: [2, 63], z: [3, 7],
             superScale: [0.5])
    }
    static let specExampleValues: [Float] = [-3, -2, -1, 0, 1, 2, 3, 4, 0, -63]

    func testLayoutBytesOfTheSpecExample() {
        let t = Self.specExample()
        let l = Q3SLayout(rows: 1, cols: 10, groupSize: 8, subBits: 6)
        XCTAssertEqual([l.groups, l.rowBytes, l.subRowBytes, l.subOffset, l.superOffset, l.totalBytes], [2, 4, 3, 64, 128, 130])
        XCTAssertEqual(t.payload.count, 130)
        XCTAssertEqual(Array(t.payload[0 ..< 4]), EdgeGoldenTests.hex("88 c6 fa 2f"))
        XCTAssertEqual(Array(t.payload[64 ..< 67]), EdgeGoldenTests.hex("c2 fe 03"))
        XCTAssertEqual(Array(t.payload[128 ..< 130]), EdgeGoldenTests.hex("00 38"))
        let listed = [0 ..< 4, 64 ..< 67, 128 ..< 130]
        for i in t.payload.indices where !listed.contains(where: { $0.contains(i) }) { XCTAssertEqual(t.payload[i], 0, "byte \(i)") }
        XCTAssertEqual(S.decoded(t), Self.specExampleValues)
        XCTAssertNil(problem(t))
        XCTAssertEqual(t.encoding, .q3s)
        XCTAssertEqual(t.params, EncodingParams(groupSize: 8, subBits: 6))
        XCTAssertEqual(t.layout, .q3s(l))
        t.payload.withUnsafeBytes { p in
            XCTAssertTrue(l.subCodes(p, row: 0, group: 0) == (2, 3))
            XCTAssertTrue(l.subCodes(p, row: 0, group: 1) == (63, 7))
        }
    }

    /// Offsets and sizes: 3 bits a code, b + 3 bits a group, 2 bytes a row; bits per weight
    /// 3 + (b + 3)/g + 16/cols.
    func testOffsetsAndSizes() {
        let cases: [(rows: Int, cols: Int, g: Int, b: Int, expected: [Int])] = [
            // groups, rowBytes, subRowBytes, subOffset, superOffset, totalBytes
            (1, 10, 8, 6, [2, 4, 3, 64, 128, 130]),
            (3, 21, 8, 8, [3, 8, 5, 64, 128, 134]),        // 33 sub bits a row: 7 padding bits
            (5, 70, 32, 6, [3, 27, 4, 192, 256, 266]),      // the last group 6 of 32
            (2, 576, 64, 6, [9, 216, 11, 448, 512, 516]),   // SmolLM2's rows: 81 sub bits
        ]
        for c in cases {
            let l = Q3SLayout(rows: c.rows, cols: c.cols, groupSize: c.g, subBits: c.b)
            XCTAssertEqual([l.groups, l.rowBytes, l.subRowBytes, l.subOffset, l.superOffset, l.totalBytes], c.expected, "\(c)")
            XCTAssertEqual(PayloadLayout(encoding: .q3s, shape: [c.rows, c.cols], params: .init(groupSize: c.g, subBits: c.b)), .q3s(l))
            XCTAssertEqual(expectedPayloadBytes(encoding: .q3s, shape: [c.rows, c.cols], params: .init(groupSize: c.g, subBits: c.b)),
                           c.expected[5])
        }
        for (g, b, bits) in [(64, 6, 3.140625), (32, 6, 3.28125), (64, 8, 3.171875)] {
            let l = Q3SLayout(rows: 4096, cols: 4096, groupSize: g, subBits: b)
            XCTAssertEqual(Double(l.totalBytes * 8) / Double(4096 * 4096), bits + 16.0 / 4096, accuracy: 1e-6)
        }
    }

    func testLayoutNeedsAMatrixAGroupOf8sAndSubBits6Or8() {
        XCTAssertNotNil(PayloadLayout(encoding: .q3s, shape: [2, 8], params: .init(groupSize: 64, subBits: 6)))
        XCTAssertNil(PayloadLayout(encoding: .q3s, shape: [16], params: .init(groupSize: 8, subBits: 6)), "q3s needs a matrix")
        XCTAssertNil(PayloadLayout(encoding: .q3s, shape: [2, 8], params: .init(groupSize: 8)), "sub_bits missing")
        for g in [0, 2, 4, 12, 33, (1 << 24) + 8] {
            XCTAssertNil(PayloadLayout(encoding: .q3s, shape: [2, 8], params: .init(groupSize: g, subBits: 6)), "group_size \(g)")
        }
        for b in [0, 4, 7, 16] {
            XCTAssertNil(PayloadLayout(encoding: .q3s, shape: [2, 8], params: .init(groupSize: 8, subBits: b)), "sub_bits \(b)")
        }
        XCTAssertEqual(Encoding.q3s.formatVersion, 4)
        XCTAssertTrue(Encoding.q3s.hasStructure)
        XCTAssertEqual(Encoding(rawValue: "q3s"), .q3s)
    }

    /// Random codes over odd shapes, group sizes and sub bits: encode, write (plain and deflated), read
    /// back as a version-4 file; `decodeRow` gives the spec's formula.
    func testRoundTripsThroughAVersion4File() throws {
        let dir = try S.scratchFolder(self)
        var samples: [S.Sample] = []
        var seed: UInt64 = 400
        for (rows, cols) in [(1, 1), (1, 8), (3, 7), (2, 9), (5, 64), (4, 65), (3, 100)] {
            for g in [8, 16, 64] {
                for b in [6, 8] {
                    seed += 1
                    samples.append(S.q3s("q3s.\(rows)x\(cols).g\(g).b\(b)", rows: rows, cols: cols, groupSize: g, subBits: b, seed: seed))
                }
            }
        }
        for s in samples {
            XCTAssertEqual(S.decoded(s.tensor), s.values, s.tensor.name)
            XCTAssertNil(problem(s.tensor), s.tensor.name)
        }
        for deflate in [false, true] {
            let path = dir + "/q3s-\(deflate).edge"
            let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance, deflate: deflate)
            for s in samples { try w.add(s.tensor) }
            try w.finish()
            try S.assertHolds(path, samples.map(\.tensor))
            let f = try EdgeFile(path: path)
            XCTAssertEqual(f.preamble.version, 4)
            for s in samples {
                let e = try XCTUnwrap(f.entry(named: s.tensor.name))
                guard case let .q3s(l) = try f.layout(of: e) else { return XCTFail(s.tensor.name) }
                let bytes = Array(try f.payload(of: e))
                var row = [Float](repeating: .nan, count: l.cols)
                for r in 0 ..< l.rows {
                    bytes.withUnsafeBytes { p in row.withUnsafeMutableBufferPointer { l.decodeRow(r, p, into: $0.baseAddress!) } }
                    XCTAssertEqual(row, Array(s.values[r * l.cols ..< (r + 1) * l.cols]), "\(s.tensor.name) row \(r)")
                }
            }
        }
    }

    private func layoutOf(_ e: TensorEntry) throws -> Q3SLayout {
        guard case let .q3s(l)? = PayloadLayout(encoding: e.encoding, shape: e.shape, params: e.params) else { throw XCTSkip("not q3s") }
        return l
    }

    func testHostilePayloadsAreRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/h.edge"
        // 21 columns: 63 code bits in 8 bytes a row (bit 63 padding); groups of 8, b = 6: 3 groups of 9
        // bits, 27 sub bits in 4 bytes a row (bits 27...31 padding).
        try S.write([S.q3s("a.q3s", rows: 3, cols: 21, groupSize: 8, subBits: 6, seed: 1)], to: path, deflate: false)
        XCTAssertEqual(try EdgeFile(path: path).preamble.version, 4)
        let original = try S.bytes(path)
        let cases: [(String, String, (inout [UInt8], Q3SLayout) -> Void)] = [
            ("a.q3s", "q3s row 1: code padding bits 63...63 of the row are not 0", { p, l in p[2 * l.rowBytes - 1] |= 0x80 }),
            ("a.q3s", "q3s row 2: sub-parameter padding bits 27...31 are not 0", { p, l in p[l.subOffset + 3 * l.subRowBytes - 1] |= 0x80 }),
            ("a.q3s", "q3s row 0: super-scale D 0x8000 is negative", { p, l in p[l.superOffset] = 0x00; p[l.superOffset + 1] = 0x80 }),
            ("a.q3s", "q3s row 2: super-scale D 0x7e01 is not finite", { p, l in p[l.superOffset + 4] = 0x01; p[l.superOffset + 5] = 0x7E }),
        ]
        try S.assertPayloadEditsRefused(original, path, layout: layoutOf, cases)
    }

    /// q3s's params: as q4k's but groups of a multiple of 8; refused naming the field.
    func testHostileParamsAreRefusedNamingTheField() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/p.edge"
        try S.write([S.q3s("a.q3s", rows: 3, cols: 21, groupSize: 8, subBits: 6, seed: 1)], to: path, deflate: false)
        let original = try S.bytes(path)
        let cases: [(JSONValue, String)] = [
            (["group_size": 8, "sub_bits": 7], "params.sub_bits"),
            (["group_size": 8], "params.sub_bits"),
            (["group_size": 4, "sub_bits": 6], "params.group_size"),
            (["group_size": 10, "sub_bits": 6], "params.group_size"),
            (["group_size": 8, "sub_bits": 6, "symmetric": false], "params.symmetric"),
        ]
        for (p, field) in cases {
            try S.put(original, path)
            try S.editTensor(path, "a.q3s") { $0["params"] = p }
            guard case .badTensor(_, "a.q3s", field, _)? = S.openError(path) else { XCTFail("\(p): \(String(describing: S.openError(path)))"); continue }
        }
    }

    /// q3s came with format version 4: an older file holding one is refused, naming the tensor.
    func testQ3SInAVersion3FileIsRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/v.edge"
        try S.write([S.f32("a", [2, 2], seed: 1), S.q3s("b.q3s", rows: 2, cols: 8, groupSize: 8, subBits: 8, seed: 2)], to: path, deflate: false)
        var b = try S.bytes(path)
        XCTAssertEqual(S.readU64(b, 8) & 0xFFFF_FFFF, 4)
        S.putLE(UInt32(3), into: &b, at: 8)
        try S.put(b, path)
        try S.editHeader(path) { tree in
            guard case var .object(o) = tree else { return }
            o["version"] = 3
            tree = .object(o)
        }
        XCTAssertEqual(S.openError(path)?.description, "\(path): tensor 'b.q3s': q3s needs format version 4, the file says 3")
    }

    /// The independent Python reader decodes the spec's example and random tensors to the same values.
    func testPythonReaderReadsTheSpecExample() throws {
        guard pythonWithNumpy else { throw XCTSkip("python3 with numpy is not available") }
        let dir = try S.scratchFolder(self)
        let path = dir + "/ex.edge"
        let random = S.q3s("r", rows: 3, cols: 37, groupSize: 16, subBits: 6, seed: 9)
        let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance, deflate: false)
        try w.add(Self.specExample())
        try w.add(random.tensor)
        try w.finish()
        let r = try runTool("/usr/bin/env", ["python3", scriptPath("edge_read.py"), "--json", path])
        XCTAssertEqual(r.code, 0, r.stderr)
        let doc = try JSONValue.parse(Array(r.stdout.utf8))
        func values(_ name: String) throws -> [Float] {
            try XCTUnwrap(doc["tensors"]?[name]?["values"]?.arrayValue).map { Float($0.doubleValue ?? .nan) }
        }
        XCTAssertEqual(try values("w"), Self.specExampleValues)
        XCTAssertEqual(doc["tensors"]?["w"]?["encoding"]?.stringValue, "q3s")
        XCTAssertEqual(try values("r"), random.values)
    }

    /// Random byte flips anywhere in a payload are refused or decoded, never a crash.
    func testRandomCorruptionNeverTraps() {
        let s = S.q3s("w", rows: 6, cols: 37, groupSize: 16, subBits: 6, seed: 5)
        var r = S.Rand(21)
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
