@testable import Checkpoint
import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// Builds GGUF bytes by hand (little-endian), so each parser refusal can be provoked exactly.
struct GGUFBuilder {
    struct Tensor {
        var name: String
        var ne: [Int64]
        var type: UInt32
        var data: [UInt8]
        /// Stored offset; nil = the next aligned position after the previous tensor.
        var offset: UInt64? = nil
    }

    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var alignment = 32
    /// Raw encoded metadata entries: key, value type, encoded value.
    var kvs: [(String, UInt32, [UInt8])] = []
    var tensors: [Tensor] = []
    var nTensorsOverride: UInt64? = nil
    var nKVOverride: UInt64? = nil

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }
    static func f32s(_ v: [Float]) -> [UInt8] { v.flatMap { le($0.bitPattern) } }

    mutating func u32(_ k: String, _ v: UInt32) { kvs.append((k, 4, Self.le(v))) }
    mutating func f32(_ k: String, _ v: Float) { kvs.append((k, 6, Self.le(v.bitPattern))) }
    mutating func string(_ k: String, _ v: String) { kvs.append((k, 8, Self.str(v))) }
    mutating func strings(_ k: String, _ v: [String]) {
        kvs.append((k, 9, Self.le(UInt32(8)) + Self.le(UInt64(v.count)) + v.flatMap(Self.str)))
    }
    mutating func i32s(_ k: String, _ v: [Int32]) {
        kvs.append((k, 9, Self.le(UInt32(5)) + Self.le(UInt64(v.count)) + v.flatMap { Self.le($0) }))
    }
    mutating func u32s(_ k: String, _ v: [UInt32]) {
        kvs.append((k, 9, Self.le(UInt32(4)) + Self.le(UInt64(v.count)) + v.flatMap { Self.le($0) }))
    }

    /// An F32 tensor; `shape` is canonical (row-major, ne reversed).
    mutating func f32Tensor(_ name: String, shape: [Int], _ values: [Float]) {
        tensors.append(Tensor(name: name, ne: shape.reversed().map(Int64.init), type: 0, data: Self.f32s(values)))
    }

    func bytes() -> [UInt8] {
        var out = magic + Self.le(version)
        out += Self.le(nTensorsOverride ?? UInt64(tensors.count)) + Self.le(nKVOverride ?? UInt64(kvs.count))
        for (k, t, v) in kvs { out += Self.str(k) + Self.le(t) + v }
        var next = 0
        var placed: [(Int, [UInt8])] = []
        for t in tensors {
            out += Self.str(t.name) + Self.le(UInt32(t.ne.count)) + t.ne.flatMap { Self.le($0) } + Self.le(t.type)
            out += Self.le(t.offset ?? UInt64(next))
            placed.append((next, t.data))
            next = (next + t.data.count + alignment - 1) / alignment * alignment
        }
        while out.count % alignment != 0 { out.append(0) }
        let start = out.count
        for (off, d) in placed {
            if out.count < start + off { out += [UInt8](repeating: 0, count: start + off - out.count) }
            out += d
        }
        return out
    }
}

extension GGUFBuilder {
    /// Writes `bytes` to a fresh temporary file and returns its path.
    static func writeTemp(_ bytes: [UInt8], _ name: String = "t.gguf") throws -> String {
        let path = try makeTemporaryFolder(prefix: "gguf-tests").appendingPathComponent(name).path
        try writeBytes(bytes, to: path)
        return path
    }
}

final class GGUFFileTests: XCTestCase {
    /// A valid two-tensor file to start each refusal from.
    private func base() -> GGUFBuilder {
        var b = GGUFBuilder()
        b.string("general.architecture", "llama")
        b.u32("llama.block_count", 1)
        b.f32Tensor("a.weight", shape: [2, 4], [1, 2, 3, 4, 5, 6, 7, 8])
        b.f32Tensor("b.weight", shape: [3], [9, 10, 11])
        return b
    }

    private func parse(_ b: GGUFBuilder) throws -> GGUFFile { try GGUFFile(path: GGUFBuilder.writeTemp(b.bytes())) }

    /// Parsing must throw a `CheckpointError` whose one-line description contains every `fragment`.
    private func assertRefused(_ bytes: [UInt8], _ fragments: [String], case matches: (CheckpointError) -> Bool,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try GGUFBuilder.writeTemp(bytes)
        do {
            _ = try GGUFFile(path: path)
            XCTFail("accepted", file: file, line: line)
        } catch let e as CheckpointError {
            XCTAssertTrue(matches(e), "wrong case: \(e)", file: file, line: line)
            let d = e.description
            XCTAssertFalse(d.contains("\n"), file: file, line: line)
            XCTAssertTrue(d.hasPrefix(path), d, file: file, line: line)
            for f in fragments { XCTAssertTrue(d.contains(f), "'\(f)' not in: \(d)", file: file, line: line) }
        }
    }

    private func isBadHeader(_ e: CheckpointError) -> Bool { if case .badHeader = e { return true }; return false }
    private func isBadOffsets(_ e: CheckpointError) -> Bool { if case .badOffsets = e { return true }; return false }

    func testValidFileParses() throws {
        let g = try parse(base())
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.alignment, 32)
        XCTAssertEqual(g.keys, ["general.architecture", "llama.block_count"])
        XCTAssertEqual(g.metadata["llama.block_count"], .uint32(1))
        XCTAssertEqual(g.tensors.map(\.name), ["a.weight", "b.weight"])
        let a = try XCTUnwrap(g.tensor(named: "a.weight"))
        XCTAssertEqual(a.ne, [4, 2])
        XCTAssertEqual(a.shape, [2, 4])
        XCTAssertEqual(a.rowCount, 2)
        XCTAssertEqual(try g.floats(a), [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(try g.floats(a, rows: 1 ..< 2), [5, 6, 7, 8])
        XCTAssertEqual(try g.floats(XCTUnwrap(g.tensor(named: "b.weight"))), [9, 10, 11])
        XCTAssertEqual(g.typeSummary, "F32:2")
    }

    func testVersion2IsAccepted() throws {
        var b = base()
        b.version = 2
        XCTAssertEqual(try parse(b).version, 2)
    }

    func testEveryValueTypeAndNestedArraysRoundTrip() throws {
        var b = GGUFBuilder()
        b.kvs = [("u8", 0, [200]), ("i8", 1, [0xFF]), ("u16", 2, GGUFBuilder.le(UInt16(60000))),
                 ("i16", 3, GGUFBuilder.le(Int16(-3))), ("u32", 4, GGUFBuilder.le(UInt32(4_000_000_000))),
                 ("i32", 5, GGUFBuilder.le(Int32(-5))), ("f32", 6, GGUFBuilder.le(Float(1.5).bitPattern)),
                 ("bool", 7, [1]), ("str", 8, GGUFBuilder.str("héllo")),
                 ("u64", 10, GGUFBuilder.le(UInt64.max)), ("i64", 11, GGUFBuilder.le(Int64(-7))),
                 ("f64", 12, GGUFBuilder.le(Double(0.25).bitPattern)),
                 // [[1, 2], []] as array of arrays of u8
                 ("nested", 9, GGUFBuilder.le(UInt32(9)) + GGUFBuilder.le(UInt64(2))
                     + GGUFBuilder.le(UInt32(0)) + GGUFBuilder.le(UInt64(2)) + [1, 2]
                     + GGUFBuilder.le(UInt32(0)) + GGUFBuilder.le(UInt64(0)))]
        let m = try parse(b).metadata
        XCTAssertEqual(m["u8"], .uint8(200))
        XCTAssertEqual(m["i8"], .int8(-1))
        XCTAssertEqual(m["u16"]?.int, 60000)
        XCTAssertEqual(m["i16"]?.int, -3)
        XCTAssertEqual(m["u32"]?.int, 4_000_000_000)
        XCTAssertEqual(m["i32"]?.int, -5)
        XCTAssertEqual(m["f32"]?.double, 1.5)
        XCTAssertEqual(m["bool"], .bool(true))
        XCTAssertEqual(m["str"]?.string, "héllo")
        XCTAssertEqual(m["u64"], .uint64(.max))
        XCTAssertNil(m["u64"]?.int, "u64 beyond Int.max has no Int value")
        XCTAssertEqual(m["i64"]?.int, -7)
        XCTAssertEqual(m["f64"]?.double, 0.25)
        XCTAssertEqual(m["nested"], .array(elementType: 9, [.array(elementType: 0, [.uint8(1), .uint8(2)]), .array(elementType: 0, [])]))
        XCTAssertEqual(m["nested"]?.typeName, "array[array]")
    }

    // MARK: - Refusals, one hand-built file each

    func testWrongMagic() throws {
        var b = base()
        b.magic = Array("GGUG".utf8)
        try assertRefused(b.bytes(), ["bad magic", "0x47475547"], case: isBadHeader)
    }

    func testBigEndianIsNamed() throws {
        var b = base()
        b.version = UInt32(3).byteSwapped
        try assertRefused(b.bytes(), ["big-endian", "0x3000000"], case: isBadHeader)
        b = base()
        b.magic = Array("FUGG".utf8)
        try assertRefused(b.bytes(), ["big-endian"], case: isBadHeader)
    }

    func testBadVersion() throws {
        for v: UInt32 in [1, 4, 0] {
            var b = base()
            b.version = v
            try assertRefused(b.bytes(), ["version \(v)", "expected 2 or 3"], case: isBadHeader)
        }
    }

    func testTruncatedHeader() throws {
        let full = base().bytes()
        // Inside the second tensor entry: the counts are still plausible, the entry runs out.
        let name = Array("b.weight".utf8)
        let inEntry = try XCTUnwrap((0 ..< full.count - name.count).first { Array(full[$0 ..< $0 + name.count]) == name }) + 12
        for n in [0, 3, 7, 15, 23, inEntry] {
            try assertRefused(Array(full.prefix(n)), ["truncated", "only"], case: isBadHeader)
        }
        // Cut early, the counts themselves are more than the remaining bytes could hold.
        try assertRefused(Array(full.prefix(30)), ["n_kv is 2", "6 bytes after the header hold at most 0"], case: isBadHeader)
        try assertRefused(Array(full.prefix(60)), ["n_tensors is 2", "36 bytes after the header hold at most 1"], case: isBadHeader)
    }

    func testTruncatedTensorData() throws {
        let full = base().bytes()
        // b.weight's 12 bytes end the file; cut 4 of them.
        try assertRefused(Array(full.dropLast(4)), ["b.weight", "12 bytes", "past the end of the file (\(full.count - 4) bytes)"],
                          case: isBadOffsets)
    }

    func testTensorOffsetOutsideFile() throws {
        var b = base()
        b.tensors[1].offset = 1 << 40
        try assertRefused(b.bytes(), ["b.weight", "\(1 << 40)", "past the end of the file"], case: isBadOffsets)
        b.tensors[1].offset = UInt64.max - 31  // aligned, and overflows when added to the data start
        try assertRefused(b.bytes(), ["b.weight", "past the end of the file"], case: isBadOffsets)
    }

    func testMisalignedOffset() throws {
        var b = base()
        b.tensors[1].offset = 36
        try assertRefused(b.bytes(), ["b.weight", "data offset 36", "alignment 32"], case: isBadOffsets)
    }

    func testOverlappingTensors() throws {
        var b = base()
        b.tensors[1].offset = 0
        try assertRefused(b.bytes(), ["overlaps", "a.weight", "b.weight"], case: isBadOffsets)
    }

    func testDuplicateTensorName() throws {
        var b = base()
        b.tensors[1].name = "a.weight"
        try assertRefused(b.bytes(), ["a.weight", "more than once"]) {
            if case .duplicateTensor(_, "a.weight") = $0 { return true }
            return false
        }
    }

    func testDuplicateKey() throws {
        var b = base()
        b.u32("llama.block_count", 2)
        try assertRefused(b.bytes(), ["duplicate metadata key 'llama.block_count'", "entries 1 and 2"], case: isBadHeader)
    }

    func testTooManyDims() throws {
        var b = base()
        b.tensors[0].ne = [1, 1, 1, 2, 4]
        try assertRefused(b.bytes(), ["a.weight", "5 dims", "at most 4"], case: isBadHeader)
    }

    func testNegativeDim() throws {
        var b = base()
        b.tensors[0].ne = [-4, 2]
        try assertRefused(b.bytes(), ["a.weight", "ne[0] = -4"], case: isBadHeader)
    }

    func testElementCountOverflow() throws {
        var b = base()
        b.tensors[0].ne = [1 << 32, 1 << 32, 1 << 32]
        try assertRefused(b.bytes(), ["a.weight", "overflows"], case: isBadHeader)
    }

    func testAbsurdCounts() throws {
        var b = base()
        b.nTensorsOverride = 1 << 40
        try assertRefused(b.bytes(), ["n_tensors is \(1 << 40)", "at most"], case: isBadHeader)
        b = base()
        b.nKVOverride = UInt64.max
        try assertRefused(b.bytes(), ["n_kv is \(UInt64.max)"], case: isBadHeader)
        b = base()
        // A string array that claims 2^50 elements.
        b.kvs.append(("tokenizer.ggml.tokens", 9, GGUFBuilder.le(UInt32(8)) + GGUFBuilder.le(UInt64(1) << 50)))
        try assertRefused(b.bytes(), ["tokenizer.ggml.tokens", "claims \(UInt64(1) << 50) elements"], case: isBadHeader)
        b = base()
        // A string whose length runs past the end of the file.
        b.kvs.append(("k", 8, GGUFBuilder.le(UInt64(1) << 33)))
        try assertRefused(b.bytes(), ["'k'", "length \(UInt64(1) << 33)"], case: isBadHeader)
    }

    func testUnknownTensorTypeID() throws {
        var b = base()
        b.tensors[0].type = 99
        try assertRefused(b.bytes(), ["a.weight", "ggml type id 99"]) {
            if case .unknownDType(_, "a.weight", _) = $0 { return true }
            return false
        }
    }

    func testBadValueTypes() throws {
        var b = base()
        b.kvs.append(("weird", 13, [0]))
        try assertRefused(b.bytes(), ["'weird'", "value type 13"], case: isBadHeader)
        b = base()
        b.kvs.append(("flag", 7, [2]))
        try assertRefused(b.bytes(), ["'flag'", "byte value 2"], case: isBadHeader)
        b = base()
        b.kvs.append(("arr", 9, GGUFBuilder.le(UInt32(42)) + GGUFBuilder.le(UInt64(1))))
        try assertRefused(b.bytes(), ["'arr'", "element type 42"], case: isBadHeader)
    }

    func testArrayNestingIsBounded() throws {
        var b = base()
        var v = GGUFBuilder.le(UInt32(0)) + GGUFBuilder.le(UInt64(0))
        for _ in 0 ..< 20 { v = GGUFBuilder.le(UInt32(9)) + GGUFBuilder.le(UInt64(1)) + v }
        b.kvs.append(("deep", 9, v))
        try assertRefused(b.bytes(), ["'deep'", "nested deeper than 8"], case: isBadHeader)
    }

    func testAlignment() throws {
        for a: UInt32 in [0, 48, 3] {
            var b = base()
            b.u32("general.alignment", a)
            try assertRefused(b.bytes(), ["general.alignment is \(a)", "power of two"], case: isBadHeader)
        }
        var b = base()
        b.u32("general.alignment", 64)
        b.alignment = 64
        let g = try parse(b)
        XCTAssertEqual(g.alignment, 64)
        XCTAssertEqual(g.dataOffset % 64, 0)
        XCTAssertEqual(try g.floats(XCTUnwrap(g.tensor(named: "b.weight"))), [9, 10, 11])
        b = base()
        b.string("general.alignment", "x")
        try assertRefused(b.bytes(), ["general.alignment is a string"], case: isBadHeader)
    }

    func testRowNotWholeBlocks() throws {
        var b = base()
        b.tensors[0] = GGUFBuilder.Tensor(name: "q.weight", ne: [33, 1], type: GGMLType.q8_0.rawValue, data: [UInt8](repeating: 0, count: 34))
        try assertRefused(b.bytes(), ["q.weight", "ne[0] = 33", "Q8_0", "block size 32"], case: isBadHeader)
    }

    func testInvalidUTF8TensorName() throws {
        var b = base()
        b.tensors[0].name = "a\u{FFFD}"
        var bytes = b.bytes()
        // Replace the 3-byte U+FFFD encoding with an invalid byte sequence of the same length.
        let idx = try XCTUnwrap((0 ..< bytes.count - 2).first { bytes[$0] == 0xEF && bytes[$0 + 1] == 0xBF && bytes[$0 + 2] == 0xBD })
        bytes[idx] = 0xC3
        bytes[idx + 1] = 0x28
        try assertRefused(bytes, ["name of tensor 0", "not valid UTF-8"], case: isBadHeader)
    }

    func testQuantizedTypeWithoutDequantizerIsNamedOnLoad() throws {
        var b = base()
        b.tensors[0] = GGUFBuilder.Tensor(name: "iq.weight", ne: [256], type: GGMLType.iq2_XXS.rawValue,
                                          data: [UInt8](repeating: 0, count: GGMLType.iq2_XXS.typeSize))
        let g = try parse(b)
        XCTAssertThrowsError(try g.floats(g.tensors[0])) { e in
            guard case let CheckpointError.unknownDType(_, tensor, dtype) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(tensor, "iq.weight")
            XCTAssertTrue(dtype.contains("IQ2_XXS"))
        }
    }

    /// Random mutations of a valid file are refused with an error or parsed; never a trap.
    func testRandomCorruptionNeverTraps() throws {
        let good = base().bytes()
        var rng = SplitMix(20240605)  // the same sweep on every run
        for _ in 0 ..< 300 {
            var b = good
            for _ in 0 ..< Int.random(in: 1 ... 4, using: &rng) {
                b[Int.random(in: 0 ..< b.count, using: &rng)] = UInt8.random(in: 0 ... 255, using: &rng)
            }
            if Bool.random(using: &rng) { b = Array(b.prefix(Int.random(in: 0 ... b.count, using: &rng))) }
            if let g = try? GGUFFile(path: GGUFBuilder.writeTemp(b)) {
                for t in g.tensors where GGUFDequant.supports(t.type) { _ = try g.floats(t) }
            }
        }
    }
}
