@testable import EdgeFormat
import Foundation
import XCTest

/// The 3-bit grouped encoding (`q3`): the layout byte by byte (the spec's example), round trips over
/// odd shapes and group sizes through the writer and reader, and hostile payloads and params refused
/// in one line naming the tensor.
final class Q3LayoutTests: XCTestCase {
    typealias S = EdgeTestSupport

    private func problem(_ t: EncodedTensor) -> String? {
        t.payload.withUnsafeBytes { groupedPayloadProblem($0, encoding: .q3, shape: t.shape, params: t.params) }
    }

    /// The example of docs/edge-format.md ("q3"), byte by byte.
    func testLayoutBytesOfTheSpecExample() throws {
        let t = EncodedTensor.q3(name: "w", rows: 2, cols: 10, groupSize: 8, u: [0, 1, 2, 3, 4, 5, 6, 7, 7, 5, 3, 3, 3, 3, 3, 3, 3, 3, 0, 1],
                                 scales: [1, 0.5, 0.25, 2], zeros: [4, 0, 3, 7])
        let l = Q3Layout(rows: 2, cols: 10, groupSize: 8, symmetric: false)
        XCTAssertEqual([l.groups, l.rowBytes, l.scaleOffset, l.zeroOffset, l.totalBytes], [2, 4, 64, 128, 132])
        XCTAssertEqual(t.payload.count, 132)
        XCTAssertEqual(Array(t.payload[0 ..< 8]), EdgeGoldenTests.hex("88 c6 fa 2f  db b6 6d 08"))
        XCTAssertEqual(Array(t.payload[64 ..< 72]), EdgeGoldenTests.hex("00 3c 00 38 00 34 00 40"))
        XCTAssertEqual(Array(t.payload[128 ..< 132]), [4, 0, 3, 7])
        let listed = [0 ..< 8, 64 ..< 72, 128 ..< 132]
        for i in t.payload.indices where !listed.contains(where: { $0.contains(i) }) { XCTAssertEqual(t.payload[i], 0, "byte \(i)") }
        XCTAssertEqual(S.decoded(t), [-4, -3, -2, -1, 0, 1, 2, 3, 3.5, 2.5, 0, 0, 0, 0, 0, 0, 0, 0, -14, -12])
        XCTAssertNil(problem(t))
        XCTAssertEqual(t.params, EncodingParams(symmetric: false, groupSize: 8))

        // Symmetric: no zero array, w = s * (u - 4).
        let s = EncodedTensor.q3(name: "s", rows: 1, cols: 8, groupSize: 8, u: [0, 1, 2, 3, 4, 5, 6, 7], scales: [0.5], zeros: nil)
        XCTAssertEqual(s.payload.count, 66)
        XCTAssertEqual(S.decoded(s), [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5])
    }

    /// Sizes: 3 bits a weight plus 16 (f16 scale) and 8 (u8 zero) bits per group.
    func testBitsPerWeight() {
        let l = Q3Layout(rows: 4096, cols: 4096, groupSize: 64, symmetric: false)
        XCTAssertEqual(Double(l.totalBytes * 8) / Double(4096 * 4096), 3.375, accuracy: 1e-3)
        let sym = Q3Layout(rows: 4096, cols: 4096, groupSize: 64, symmetric: true)
        XCTAssertEqual(Double(sym.totalBytes * 8) / Double(4096 * 4096), 3.25, accuracy: 1e-3)
    }

    /// Random codes over shapes where codes straddle bytes, groups end inside a byte unit of the row
    /// (cols not a multiple of the group or of 8), single rows and columns: what is written is read back.
    func testRoundTripsOverShapesAndGroupSizes() throws {
        let dir = try S.scratchFolder(self)
        var samples: [EdgeTestSupport.Sample] = []
        var seed: UInt64 = 100
        for (rows, cols) in [(1, 1), (1, 8), (3, 7), (2, 9), (5, 64), (4, 65), (7, 100), (1, 257)] {
            for g in [8, 16, 24, 64] {
                for symmetric in [true, false] {
                    seed += 1
                    samples.append(S.q3("q3.\(rows)x\(cols).g\(g).\(symmetric)", rows: rows, cols: cols, groupSize: g, symmetric: symmetric, seed: seed))
                }
            }
        }
        for s in samples {
            XCTAssertEqual(S.decoded(s.tensor), s.values, s.tensor.name)
            XCTAssertNil(problem(s.tensor), s.tensor.name)
        }
        for deflate in [false, true] {
            let path = dir + "/q3-\(deflate).edge"
            let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance, deflate: deflate)
            for s in samples { try w.add(s.tensor) }
            try w.finish()
            try S.assertHolds(path, samples.map(\.tensor))
        }
    }

    /// The q3 layout of a tensor entry (for `S.assertPayloadEditsRefused`).
    private func layoutOf(_ e: TensorEntry) throws -> Q3Layout {
        guard case let .q3(l)? = PayloadLayout(encoding: e.encoding, shape: e.shape, params: e.params) else { throw XCTSkip("not q3") }
        return l
    }

    func testHostilePayloadsAndParamsAreRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/h.edge"
        // 21 columns: 63 bits a row, 8 bytes, bit 63 is padding; groups of 8: 3 per row.
        let samples = [S.q3("a.q3.asym", rows: 3, cols: 21, groupSize: 8, symmetric: false, seed: 1),
                       S.q3("b.q3.sym", rows: 2, cols: 21, groupSize: 8, symmetric: true, seed: 2)]
        try S.write(samples, to: path, deflate: false)
        let original = try S.bytes(path)
        let cases: [(String, String, (inout [UInt8], Q3Layout) -> Void)] = [
            ("a.q3.asym", "zero point 8", { p, l in p[l.zeroOffset + 4] = 8 }),
            ("a.q3.asym", "zero point 255", { p, l in p[l.zeroOffset] = 255 }),
            ("a.q3.asym", "not finite", { p, l in p[l.scaleOffset + 2] = 0x00; p[l.scaleOffset + 3] = 0x7C }),  // +Inf
            ("b.q3.sym", "not finite", { p, l in p[l.scaleOffset + 6] = 0x01; p[l.scaleOffset + 7] = 0xFE }),   // NaN
            ("b.q3.sym", "q3 row 1: padding bits 63...63", { p, l in p[2 * l.rowBytes - 1] |= 0x80 }),
        ]
        try S.assertPayloadEditsRefused(original, path, layout: layoutOf, cases)
        // Deflated payloads are checked when inflated.
        let packedPath = dir + "/hz.edge"
        let zeros = EncodedTensor.q3(name: "z", rows: 64, cols: 64, groupSize: 64, u: .init(repeating: 4, count: 4096),
                                     scales: .init(repeating: 1, count: 64), zeros: .init(repeating: 7, count: 64))
        var badZeros = zeros
        badZeros.payload[Q3Layout(rows: 64, cols: 64, groupSize: 64, symmetric: false).zeroOffset + 5] = 9
        let w = try EdgeWriter(path: packedPath, config: S.config, provenance: S.provenance, deflate: true)
        XCTAssertThrowsError(try w.add(badZeros), "the writer checks the structure too") {
            guard case let .badTensor(_, "z", "payload", why)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("row 5 group 0: zero point 9"), why)
        }
        try w.add(zeros)
        try w.finish()
        let f = try EdgeFile(path: packedPath)
        XCTAssertEqual(f.entry(named: "z")?.compression, .deflate)
        XCTAssertEqual(try f.floats(of: f.entry(named: "z")!), .init(repeating: -3, count: 4096))

        // A truncated payload and lying params: refused before any payload byte is read.
        try S.put(original, path)
        try S.editTensor(path, "a.q3.asym") { $0["length"] = .number(Double(Q3Layout(rows: 3, cols: 21, groupSize: 8, symmetric: false).totalBytes - 1)) }
        guard case .badLength(_, .tensor("a.q3.asym"), "length", _, _)? = S.openError(path) else { return XCTFail() }
        try S.put(original, path)
        try S.editTensor(path, "a.q3.asym") { $0["shape"] = [3, 30] }  // 90 bits a row: 12 bytes, not 8
        guard case .badLength(_, .tensor("a.q3.asym"), "length", _, _)? = S.openError(path) else { return XCTFail() }
        let params: [(JSONValue, String)] = [
            (["symmetric": false, "group_size": 4], "params.group_size"),
            (["symmetric": false, "group_size": 12], "params.group_size"),
            (["symmetric": false, "group_size": 0], "params.group_size"),
            (["symmetric": false, "group_size": .number(Double(1 << 25))], "params.group_size"),
            (["symmetric": false], "params.group_size"),
            (["group_size": 8], "params.symmetric"),
            (["symmetric": false, "group_size": 8, "value_encoding": "q8"], "params.value_encoding"),
            (["symmetric": false, "group_size": 8, "n": 2], "params.n"),
        ]
        for (p, field) in params {
            try S.put(original, path)
            try S.editTensor(path, "a.q3.asym") { $0["params"] = p }
            let e = S.openError(path)
            guard case .badTensor(_, "a.q3.asym", field, _)? = e else { XCTFail("\(p): \(String(describing: e))"); continue }
        }
        try S.put(original, path)
        try S.editTensor(path, "a.q3.asym") { $0["shape"] = [63] }
        guard case .badTensor(_, "a.q3.asym", "shape", _)? = S.openError(path) else { return XCTFail() }
    }

    /// Random byte flips anywhere in a payload are refused or decoded, never a crash.
    func testRandomCorruptionNeverTraps() {
        let s = S.q3("w", rows: 6, cols: 37, groupSize: 16, symmetric: false, seed: 5)
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
