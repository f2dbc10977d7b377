@testable import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// Shared fixtures for the `.edge` tests: a scratch folder, a tiny config, deterministic
/// tensors of every encoding, and byte-level surgery on written files.
enum EdgeTestSupport {
    /// A fresh empty folder (its path) under the system temporary directory, removed when `test` ends.
    static func scratchFolder(_ test: XCTestCase) throws -> String { try temporaryFolder(test).path }

    static let config = ModelConfig(architecture: .llama, vocabSize: 16, hiddenSize: 8, numLayers: 1, numHeads: 2,
                                    numKVHeads: 1, headDim: 4, intermediateSize: 12, maxPositions: 32, normEps: 1e-5,
                                    ropeTheta: 10000, tiedEmbeddings: true, activation: "silu", bosTokenID: 1, eosTokenID: 2)

    static let provenance = Provenance(sourceSHA256: String(repeating: "ab", count: 32), sourceFormat: "safetensors",
                                       sourcePath: "model.safetensors",
                                       recipe: ["name": "test", "stages": [["pass": "quantize", "bits": 8]]],
                                       passes: [["pass": "quantize", "tensors": 3, "ratio": 0.25]],
                                       metrics: ["ppl_before": 12.5, "ppl_after": 12.75])

    /// The deterministic generator of the test data (xorshift64*).
    typealias Rand = XorShiftRandom

    /// A tensor and the values an independent dequantizer (below, written from the spec) says it holds.
    struct Sample {
        var tensor: EncodedTensor
        var values: [Float]
    }

    static func f32(_ name: String, _ shape: [Int], seed: UInt64) -> Sample {
        var r = Rand(seed)
        let v = (0 ..< shape.reduce(1, *)).map { _ in r.float(-2, 2) }
        return Sample(tensor: .f32(name: name, shape: shape, values: v), values: v)
    }

    static func f16(_ name: String, _ shape: [Int], seed: UInt64) -> Sample {
        var r = Rand(seed)
        // Multiples of 1/64 in [-4, 4] are exact in binary16, so the expected values need no rounding model.
        let v = (0 ..< shape.reduce(1, *)).map { _ in Float(Int(r.next() % 513) - 256) / 64 }
        return Sample(tensor: .f16(name: name, shape: shape, values: v), values: v)
    }

    static func q8(_ name: String, rows: Int, cols: Int, symmetric: Bool, seed: UInt64) -> Sample {
        var r = Rand(seed)
        let q = (0 ..< rows * cols).map { _ in symmetric ? UInt8(bitPattern: Int8(Int(r.byte(0 ... 254)) - 127)) : r.byte(0 ... 255) }
        let scales = (0 ..< rows).map { _ in r.float(0.001, 0.1) }
        let zeros = symmetric ? nil : (0 ..< rows).map { _ in r.byte(0 ... 255) }
        var v = [Float](repeating: 0, count: rows * cols)
        for i in 0 ..< rows {
            for j in 0 ..< cols {
                let b = q[i * cols + j]
                v[i * cols + j] = symmetric ? scales[i] * Float(Int8(bitPattern: b)) : scales[i] * (Float(b) - Float(zeros![i]))
            }
        }
        return Sample(tensor: .q8(name: name, rows: rows, cols: cols, q: q, scales: scales, zeros: zeros), values: v)
    }

    static func q4(_ name: String, rows: Int, cols: Int, groupSize: Int, symmetric: Bool, seed: UInt64) -> Sample {
        var r = Rand(seed)
        let groups = (cols + groupSize - 1) / groupSize
        let u = (0 ..< rows * cols).map { _ in r.byte(0 ... 15) }
        // Scales exact in binary16 (k/1024), so the f16 round trip is the identity.
        let scales = (0 ..< rows * groups).map { _ in Float(1 + r.next() % 200) / 1024 }
        let zeros = symmetric ? nil : (0 ..< rows * groups).map { _ in r.byte(0 ... 15) }
        var v = [Float](repeating: 0, count: rows * cols)
        for i in 0 ..< rows {
            for j in 0 ..< cols {
                let g = i * groups + j / groupSize
                let z = symmetric ? Float(8) : Float(zeros![g])
                v[i * cols + j] = scales[g] * (Float(u[i * cols + j]) - z)
            }
        }
        return Sample(tensor: .q4(name: name, rows: rows, cols: cols, groupSize: groupSize, u: u, scales: scales, zeros: zeros), values: v)
    }

    static func q3(_ name: String, rows: Int, cols: Int, groupSize: Int, symmetric: Bool, seed: UInt64) -> Sample {
        var r = Rand(seed)
        let groups = (cols + groupSize - 1) / groupSize
        let u = (0 ..< rows * cols).map { _ in r.byte(0 ... 7) }
        // Scales exact in binary16 (k/1024), so the f16 round trip is the identity.
        let scales = (0 ..< rows * groups).map { _ in Float(1 + r.next() % 200) / 1024 }
        let zeros = symmetric ? nil : (0 ..< rows * groups).map { _ in r.byte(0 ... 7) }
        var v = [Float](repeating: 0, count: rows * cols)
        for i in 0 ..< rows {
            for j in 0 ..< cols {
                let g = i * groups + j / groupSize
                let z = symmetric ? Float(4) : Float(zeros![g])
                v[i * cols + j] = scales[g] * (Float(u[i * cols + j]) - z)
            }
        }
        return Sample(tensor: .q3(name: name, rows: rows, cols: cols, groupSize: groupSize, u: u, scales: scales, zeros: zeros), values: v)
    }

    /// A q3s tensor with random codes u and zero points z (0...7), scale codes sc (below 2^subBits) and
    /// per-row D exact in binary16 (k/1024, 0 included); its values by the spec's formula, s = D*sc,
    /// w = s*(u - z) (exact).
    static func q3s(_ name: String, rows: Int, cols: Int, groupSize: Int, subBits: Int, seed: UInt64) -> Sample {
        var r = Rand(seed)
        let groups = (cols + groupSize - 1) / groupSize
        let u = (0 ..< rows * cols).map { _ in r.byte(0 ... 7) }
        let sc = (0 ..< rows * groups).map { _ in r.byte(0 ... UInt8((1 << subBits) - 1)) }
        let z = (0 ..< rows * groups).map { _ in r.byte(0 ... 7) }
        let superScale = (0 ..< rows).map { _ in Float(r.next() % 200) / 1024 }
        var v = [Float](repeating: 0, count: rows * cols)
        for i in 0 ..< rows {
            for j in 0 ..< cols {
                let k = i * groups + j / groupSize
                v[i * cols + j] = superScale[i] * Float(sc[k]) * Float(Int(u[i * cols + j]) - Int(z[k]))
            }
        }
        return Sample(tensor: .q3s(name: name, rows: rows, cols: cols, groupSize: groupSize, subBits: subBits, u: u, sc: sc, z: z,
                                   superScale: superScale), values: v)
    }

    /// A q4k tensor with random codes u, sub codes sc and mn (below 2^subBits) and per-row D and M
    /// exact in binary16 (k/1024, 0 included); its values by the spec's formula: d = D*sc, m = M*mn,
    /// w = d*u - m in binary32.
    static func q4k(_ name: String, rows: Int, cols: Int, groupSize: Int, subBits: Int, seed: UInt64) -> Sample {
        var r = Rand(seed)
        let groups = (cols + groupSize - 1) / groupSize
        let u = (0 ..< rows * cols).map { _ in r.byte(0 ... 15) }
        let top = UInt8((1 << subBits) - 1)
        let sc = (0 ..< rows * groups).map { _ in r.byte(0 ... top) }
        let mn = (0 ..< rows * groups).map { _ in r.byte(0 ... top) }
        let superScale = (0 ..< rows).map { _ in Float(r.next() % 200) / 1024 }
        let superMin = (0 ..< rows).map { _ in Float(r.next() % 200) / 1024 }
        var v = [Float](repeating: 0, count: rows * cols)
        for i in 0 ..< rows {
            for j in 0 ..< cols {
                let k = i * groups + j / groupSize
                let d = superScale[i] * Float(sc[k]), m = superMin[i] * Float(mn[k])
                v[i * cols + j] = d * Float(u[i * cols + j]) - m
            }
        }
        return Sample(tensor: .q4k(name: name, rows: rows, cols: cols, groupSize: groupSize, subBits: subBits, u: u, sc: sc, mn: mn,
                                   superScale: superScale, superMin: superMin), values: v)
    }

    /// `s` (a dense f32, f16 or q8 matrix) with all but the first `n` elements of every group of `m`
    /// columns zeroed (the tail group: min(n, tail) kept), packed as nm; its values, zeroed likewise.
    static func nm(_ s: Sample, name: String, n: Int, m: Int) -> Sample {
        var t = s.tensor, v = s.values
        t.name = name
        let rows = t.shape[0], cols = t.shape[1]
        for r in 0 ..< rows {
            for j in 0 ..< cols where j % m >= n || (j / m == cols / m && j % m >= min(n, cols % m)) {
                let k = r * cols + j
                v[k] = 0
                switch t.encoding {
                case .f32: for b in 0 ..< 4 { t.payload[4 * k + b] = 0 }
                case .f16: for b in 0 ..< 2 { t.payload[2 * k + b] = 0 }
                default:
                    guard case let .q8(l)? = t.layout else { preconditionFailure("\(t.name) is not a valid f32, f16 or q8 matrix") }
                    t.payload[k] = l.symmetric ? 0 : t.payload[l.zeroOffset + r]
                }
            }
        }
        return Sample(tensor: t.packedNM(n: n, m: m)!, values: v)
    }

    /// Every dense encoding the sparse and N:M packers accept, built from `v` [rows, cols]: f32, f16,
    /// q8 symmetric and q8 asymmetric with zero point `asymmetricZero(row)`; scales max|row| / 127,
    /// so zeros stay zero in each.
    static func denseEncodings(_ v: [Float], rows: Int, cols: Int, asymmetricZero: (Int) -> Int = { 127 + $0 % 2 }) -> [EncodedTensor] {
        var out: [EncodedTensor] = [.f32(name: "w", shape: [rows, cols], values: v), .f16(name: "w", shape: [rows, cols], values: v)]
        for sym in [true, false] {
            var q = [UInt8](repeating: 0, count: rows * cols), scales = [Float](repeating: 0, count: rows)
            var zeros: [UInt8]? = sym ? nil : [UInt8](repeating: 0, count: rows)
            for r in 0 ..< rows {
                let s = (v[r * cols ..< (r + 1) * cols].map(\.magnitude).max() ?? 0) / 127
                scales[r] = s
                let z = sym ? 0 : asymmetricZero(r)
                zeros?[r] = UInt8(z)
                for j in 0 ..< cols {
                    let c = s > 0 ? Int((v[r * cols + j] / s).rounded()) : 0
                    q[r * cols + j] = sym ? UInt8(bitPattern: Int8(c)) : UInt8(c + z)
                }
            }
            out.append(.q8(name: "w", rows: rows, cols: cols, q: q, scales: scales, zeros: zeros))
        }
        return out
    }

    /// The values the reader decodes `t` to.
    static func decoded(_ t: EncodedTensor) -> [Float] {
        t.payload.withUnsafeBytes { decodePayload($0, encoding: t.encoding, shape: t.shape, params: t.params) }
    }

    /// Rewrites bytes of tensor `name`'s payload in the file at `path` in place (`edit` gets them and
    /// the tensor's layout, from `layout`) and fixes its CRC32, so only the payload's structure is wrong.
    static func corruptPayload<L>(_ path: String, _ name: String, layout: (TensorEntry) throws -> L,
                                  _ edit: (inout [UInt8], L) -> Void) throws {
        let f = try EdgeFile(path: path)
        let e = try XCTUnwrap(f.entry(named: name))
        let l = try layout(e)
        var payload = Array(try f.payload(of: e))
        edit(&payload, l)
        var b = try bytes(path)
        b.replaceSubrange(e.offset ..< e.offset + e.length, with: payload)
        try put(b, path)
        let crc = CRC32.checksum(payload)
        try editTensor(path, name) { $0["crc32"] = .number(Double(crc)) }
    }

    /// For each case (tensor, words, edit): restores `original` at `path`, applies the edit to the
    /// tensor's payload (`corruptPayload`, CRC updated so the structure check is what fails) and
    /// asserts that opening the file is refused as a bad payload of that tensor, the reason
    /// containing `words`.
    static func assertPayloadEditsRefused<L>(_ original: [UInt8], _ path: String, layout: (TensorEntry) throws -> L,
                                             _ cases: [(String, String, (inout [UInt8], L) -> Void)],
                                             file: StaticString = #filePath, line: UInt = #line) throws {
        for (name, words, edit) in cases {
            try put(original, path)
            try corruptPayload(path, name, layout: layout, edit)
            let e = openError(path, file: file, line: line)
            guard case let .badTensor(_, tensor, field, why)? = e else {
                XCTFail("\(words): \(String(describing: e))", file: file, line: line); continue
            }
            XCTAssertEqual(tensor, name, file: file, line: line)
            XCTAssertEqual(field, "payload", file: file, line: line)
            XCTAssertTrue(why.contains(words), "\(words): \(why)", file: file, line: line)
            XCTAssertTrue(e!.description.contains("tensor '\(name)'"), e!.description, file: file, line: line)
        }
    }

    /// Asserts that the file at `path` holds each of `tensors` as written: encoding, params, nnz,
    /// payload bytes, and the values `decodePayload` gives for the tensor in memory.
    static func assertHolds(_ path: String, _ tensors: [EncodedTensor], file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try EdgeFile(path: path)
        for t in tensors {
            let e = try XCTUnwrap(f.entry(named: t.name), file: file, line: line)
            XCTAssertEqual(e.encoding, t.encoding, t.name, file: file, line: line)
            XCTAssertEqual(e.params, t.params, t.name, file: file, line: line)
            XCTAssertEqual(e.nnz, t.nnz, t.name, file: file, line: line)
            let values = decoded(t)
            XCTAssertEqual(try f.floats(of: e), values, t.name, file: file, line: line)
            XCTAssertEqual(Array(try f.payload(of: e)), t.payload, t.name, file: file, line: line)
        }
    }

    /// One tensor of every encoding and variant, with odd sizes.
    static func everyEncoding() -> [Sample] {
        [
            f32("a.f32", [3, 5], seed: 1),
            // Zeros compress: exercises the deflate path when it is enabled.
            Sample(tensor: .f32(name: "i.zeros", shape: [64, 16], values: .init(repeating: 0, count: 1024)), values: .init(repeating: 0, count: 1024)),
            f32("b.f32.vector", [7], seed: 2),
            f16("c.f16", [5, 3], seed: 3),
            q8("d.q8.sym", rows: 3, cols: 7, symmetric: true, seed: 4),
            q8("e.q8.asym", rows: 5, cols: 13, symmetric: false, seed: 5),
            q4("f.q4.sym", rows: 3, cols: 9, groupSize: 4, symmetric: true, seed: 6),
            q4("g.q4.asym", rows: 4, cols: 33, groupSize: 32, symmetric: false, seed: 7),
            q4("h.q4.onegroup", rows: 2, cols: 5, groupSize: 8, symmetric: false, seed: 8),
            nm(q8("x", rows: 3, cols: 10, symmetric: true, seed: 9), name: "j.nm24.q8.sym", n: 2, m: 4),
            nm(q8("x", rows: 4, cols: 9, symmetric: false, seed: 10), name: "k.nm14.q8.asym", n: 1, m: 4),
            nm(f16("x", [5, 8], seed: 11), name: "l.nm24.f16", n: 2, m: 4),
            nm(f32("x", [4, 13], seed: 12), name: "m.nm35.f32", n: 3, m: 5),
            q3("n.q3.sym", rows: 3, cols: 21, groupSize: 8, symmetric: true, seed: 13),    // 63 bits a row: 1 padding bit
            q3("o.q3.asym", rows: 5, cols: 70, groupSize: 32, symmetric: false, seed: 14), // a short last group
            q3("p.q3.onegroup", rows: 2, cols: 5, groupSize: 64, symmetric: false, seed: 15),
            q4k("q.q4k.b6", rows: 3, cols: 21, groupSize: 8, subBits: 6, seed: 16),   // odd cols; 36 sub bits a row: 4 padding bits
            q4k("r.q4k.b8", rows: 5, cols: 70, groupSize: 32, subBits: 8, seed: 17),  // a short last group
            q4k("s.q4k.onegroup", rows: 2, cols: 5, groupSize: 64, subBits: 6, seed: 18),
            q3s("t.q3s.b6", rows: 3, cols: 21, groupSize: 8, subBits: 6, seed: 19),   // 63 code bits, 27 sub bits a row
            q3s("u.q3s.b8", rows: 5, cols: 70, groupSize: 32, subBits: 8, seed: 20),  // a short last group
        ]
    }

    static let tokenizer = Array(#"{"model":{"type":"BPE","vocab":{"a":0,"b":1}},"added_tokens":[]}"#.utf8)

    /// Writes `samples` (and a tokenizer blob) to `path`.
    static func write(_ samples: [Sample], to path: String, deflate: Bool, blob: Bool = true) throws {
        let w = try EdgeWriter(path: path, config: config, provenance: provenance, deflate: deflate)
        for s in samples { try w.add(s.tensor, nnz: s.values.filter { $0 != 0 }.count) }
        if blob { try w.addBlob(name: "tokenizer.json", bytes: tokenizer) }
        try w.finish()
    }

    /// The file's bytes.
    static func bytes(_ path: String) throws -> [UInt8] { try readBytes(path) }

    /// Writes `bytes` to `path`.
    static func put(_ bytes: [UInt8], _ path: String) throws { try writeBytes(bytes, to: path) }

    static func readU64(_ b: [UInt8], _ at: Int) -> UInt64 { readLEU64(b, at) }

    static func putLE<T: FixedWidthInteger>(_ v: T, into b: inout [UInt8], at: Int) { TestSupport.putLE(v, into: &b, at: at) }

    /// `editEdgeHeader`: the header rewritten through `edit`, header_length and header_crc32 fixed.
    static func editHeader(_ path: String, _ edit: (inout JSONValue) -> Void) throws { try editEdgeHeader(path, edit) }

    /// `replaceEdgeHeader`: the header bytes replaced verbatim, header_length and header_crc32 fixed.
    static func replaceHeader(_ path: String, _ b: inout [UInt8], offset: Int, with header: [UInt8]) throws {
        try replaceEdgeHeader(path, &b, offset: offset, with: header)
    }

    /// `editEdgeTensor`: the members of tensor `name` edited.
    static func editTensor(_ path: String, _ name: String, _ edit: @escaping (inout [String: JSONValue]) -> Void) throws {
        try editEdgeTensor(path, name, edit)
    }

    /// The error `EdgeFile(path:)` throws, failing the test if it throws something else or nothing.
    static func openError(_ path: String, verify: Bool = true, file: StaticString = #filePath, line: UInt = #line) -> EdgeFormatError? {
        do {
            _ = try EdgeFile(path: path, verifyChecksums: verify)
            XCTFail("expected \(path) to be refused", file: file, line: line)
        } catch let e as EdgeFormatError {
            XCTAssertFalse(e.description.contains("\n"), "error description must be one line: \(e)", file: file, line: line)
            return e
        } catch {
            XCTFail("expected an EdgeFormatError, got \(type(of: error)): \(error)", file: file, line: line)
        }
        return nil
    }
}
