@testable import EdgeFormat
import Foundation
import XCTest

/// One hand-mutated file per reader error: the reader must refuse each with the right case,
/// naming the item and both numbers, and never trap.
final class EdgeValidationTests: XCTestCase {
    typealias S = EdgeTestSupport
    var dir = ""
    /// Every encoding, stored plain; `original` holds its bytes.
    var path = ""
    var original: [UInt8] = []
    /// The same tensors written with deflate ("i.zeros" is stored deflated); `packedOriginal` holds its bytes.
    var packed = ""
    var packedOriginal: [UInt8] = []

    override func setUpWithError() throws {
        dir = try S.scratchFolder(self)
        path = dir + "/m.edge"
        packed = dir + "/packed.edge"
        try S.write(S.everyEncoding(), to: path, deflate: false)
        try S.write(S.everyEncoding(), to: packed, deflate: true)
        original = try S.bytes(path)
        packedOriginal = try S.bytes(packed)
        XCTAssertEqual(try entry("i.zeros", in: packed).compression, .deflate)
    }

    private func entry(_ name: String, in file: String? = nil) throws -> TensorEntry {
        try XCTUnwrap(EdgeFile(path: file ?? path).entry(named: name))
    }

    func testTruncatedAtEveryLength() throws {
        // Longest first, cutting the same file down one byte at a time (truncate(2) is much cheaper than rewriting).
        for cut in stride(from: original.count - 1, through: 0, by: -1) {
            XCTAssertEqual(truncate(path, off_t(cut)), 0)
            guard let e = S.openError(path) else { return }
            guard case let .truncated(_, _, needed, size) = e else { return XCTFail("cut \(cut): \(e)") }
            XCTAssertEqual(size, cut)
            XCTAssertGreaterThan(needed, cut, "cut \(cut)")
        }
    }

    func testAppendedBytesAreRefused() throws {
        try S.put(original + [0], path)
        guard case let .badPreamble(_, field, _, why)? = S.openError(path) else { return XCTFail() }
        XCTAssertEqual(field, "header_length")
        XCTAssertTrue(why.contains("1 bytes follow"), why)
    }

    func testBadMagic() throws {
        var b = original
        b[3] = UInt8(ascii: "X")
        try S.put(b, path)
        XCTAssertEqual(S.openError(path), .notEdgeFile(file: path, found: Array("EDGX\r\n\u{1A}\n".utf8)))
        XCTAssertTrue(S.openError(path)!.description.contains("not an .edge file"))
        // CRLF translation damage is caught by the magic too.
        try S.put(Array(original[0 ..< 4]) + [0x0A] + Array(original[6...]), path)
        guard case .notEdgeFile? = S.openError(path) else { return XCTFail() }
    }

    func testNewerVersionIsRefusedWithBothNumbers() throws {
        var b = original
        XCTAssertEqual(S.readU64(b, 8) & 0xFFFF_FFFF, 4, "the file holds q3s tensors: version 4")
        S.putLE(UInt32(5), into: &b, at: 8)
        try S.put(b, path)
        let e = S.openError(path)
        XCTAssertEqual(e, .newerVersion(file: path, version: 5, supported: 4))
        XCTAssertTrue(e!.description.contains("written by a newer version of the format (v5); this reader understands up to v4"), e!.description)
        S.putLE(UInt32(0), into: &b, at: 8)
        try S.put(b, path)
        guard case .badPreamble(_, "version", 8, _)? = S.openError(path) else { return XCTFail() }
    }

    func testHeaderVersionMustMatchThePreamble() throws {
        for version in [1, 3, 5] {
            try S.put(original, path)
            try S.editHeader(path) { tree in
                guard case var .object(o) = tree else { return }
                o["version"] = .number(Double(version))
                tree = .object(o)
            }
            guard case let .badHeader(_, "version", why)? = S.openError(path) else { return XCTFail("\(version)") }
            XCTAssertTrue(why.contains("is \(version); the preamble says 4"), why)
        }
    }

    /// Sets the preamble's and the header's version of the file at `file` to `version`.
    private func setVersion(_ version: UInt32, of file: String) throws {
        var b = try S.bytes(file)
        S.putLE(version, into: &b, at: 8)
        try S.put(b, file)
        try S.editHeader(file) { tree in
            guard case var .object(o) = tree else { return }
            o["version"] = .number(Double(version))
            tree = .object(o)
        }
    }

    func testQ3InAVersion1FileIsRefusedNamingTheTensor() throws {
        try setVersion(1, of: path)
        let e = S.openError(path)
        XCTAssertEqual(e, .encodingNeedsNewerVersion(file: path, tensor: "n.q3.sym", encoding: "q3", needs: 2, version: 1))
        XCTAssertEqual(e?.description, "\(path): tensor 'n.q3.sym': q3 needs format version 2, the file says 1")
        // Refused before any payload byte is read, even with the checksums deferred.
        XCTAssertEqual(S.openError(path, verify: false), e)
    }

    func testQ4KInAVersion2FileIsRefusedNamingTheTensor() throws {
        try setVersion(2, of: path)
        let e = S.openError(path)
        XCTAssertEqual(e, .encodingNeedsNewerVersion(file: path, tensor: "q.q4k.b6", encoding: "q4k", needs: 3, version: 2))
        XCTAssertEqual(e?.description, "\(path): tensor 'q.q4k.b6': q4k needs format version 3, the file says 2")
        XCTAssertEqual(S.openError(path, verify: false), e)
    }

    func testVersion2To4WithoutQ3Q4KOrQ3SAreRead() throws {
        // Writers write v1 when no tensor is q3, q4k or q3s (v2 when one is q3 and none q4k or q3s), but
        // a reader accepts such a file saying a newer version too.
        let plain = dir + "/plain.edge"
        let samples = S.everyEncoding().filter { ![.q3, .q4k, .q3s].contains($0.tensor.encoding) }
        try S.write(samples, to: plain, deflate: false)
        XCTAssertEqual(try EdgeFile(path: plain).preamble.version, 1)
        for version in [UInt32(2), 3, 4] {
            try setVersion(version, of: plain)
            let f = try EdgeFile(path: plain)
            XCTAssertEqual(f.preamble.version, version)
            XCTAssertEqual(f.header.version, Int(version))
            for s in samples { XCTAssertEqual(try f.floats(of: XCTUnwrap(f.entry(named: s.tensor.name))), s.values, s.tensor.name) }
        }
        let withQ3 = dir + "/q3.edge"
        let q3Samples = S.everyEncoding().filter { $0.tensor.encoding != .q4k && $0.tensor.encoding != .q3s }
        try S.write(q3Samples, to: withQ3, deflate: false)
        XCTAssertEqual(try EdgeFile(path: withQ3).preamble.version, 2)
        try setVersion(4, of: withQ3)
        let f = try EdgeFile(path: withQ3)
        for s in q3Samples { XCTAssertEqual(try f.floats(of: XCTUnwrap(f.entry(named: s.tensor.name))), s.values, s.tensor.name) }
    }

    func testUnknownFlagsAndReservedBytes() throws {
        var b = original
        S.putLE(UInt32(4), into: &b, at: 12)
        try S.put(b, path)
        guard case .badPreamble(_, "flags", 12, _)? = S.openError(path) else { return XCTFail() }
        b = original
        b[50] = 1
        try S.put(b, path)
        guard case .badPreamble(_, "reserved", 50, _)? = S.openError(path) else { return XCTFail() }
    }

    func testHeaderRangeLies() throws {
        var b = original
        let offset = S.readU64(b, 16)
        S.putLE(offset + 1, into: &b, at: 16)
        try S.put(b, path)
        guard case .badPreamble(_, "header_offset", 16, _)? = S.openError(path) else { return XCTFail() }
        S.putLE(UInt64.max - 63, into: &b, at: 16)
        try S.put(b, path)
        guard case .badPreamble(_, "header_offset", 16, _)? = S.openError(path) else { return XCTFail() }
        b = original
        S.putLE(UInt64(1) << 40, into: &b, at: 24)
        try S.put(b, path)
        guard case .badPreamble(_, "header_length", 24, _)? = S.openError(path) else { return XCTFail() }
        // A header that starts earlier (inside the data) fails its checksum or the trailing-bytes rule, never reads garbage as JSON.
        b = original
        S.putLE(offset - 64, into: &b, at: 16)
        try S.put(b, path)
        guard case .badPreamble(_, "header_length", 24, _)? = S.openError(path) else { return XCTFail() }
    }

    func testFlippedHeaderByte() throws {
        var b = original
        let offset = Int(S.readU64(b, 16))
        b[offset + 10] ^= 0x01
        try S.put(b, path)
        guard case let .headerChecksum(_, at, expected, actual)? = S.openError(path) else { return XCTFail() }
        XCTAssertEqual(at, offset)
        XCTAssertNotEqual(expected, actual)
    }

    func testFlippedTensorByteNamesTheTensor() throws {
        for (name, file, bytes) in [("d.q8.sym", path, original), ("i.zeros", packed, packedOriginal)] {  // stored plain, and deflated
            let e = try entry(name, in: file)
            var b = bytes
            b[e.offset + e.length - 1] ^= 0x80
            try S.put(b, file)
            guard case let .checksum(_, item, offset, expected, actual)? = S.openError(file) else { return XCTFail(name) }
            XCTAssertEqual(item, .tensor(name))
            XCTAssertEqual(offset, e.offset)
            XCTAssertEqual(expected, e.crc32)
            XCTAssertNotEqual(actual, e.crc32)
            XCTAssertTrue(S.openError(file)!.description.contains("tensor '\(name)'"))
            // A fast open skips the checksums; verify() finds the damage later.
            let f = try EdgeFile(path: file, verifyChecksums: false)
            XCTAssertThrowsError(try f.verify()) { XCTAssertEqual(($0 as? EdgeFormatError), S.openError(file)) }
        }
    }

    func testFlippedBlobByteNamesTheBlob() throws {
        let f = try EdgeFile(path: path)
        let blob = try XCTUnwrap(f.blobs.first)
        var b = original
        b[blob.offset] ^= 0x01
        try S.put(b, path)
        guard case .checksum(_, .blob("tokenizer.json"), blob.offset, _, _)? = S.openError(path) else { return XCTFail() }
    }

    func testCorruptDeflateStreamWithMatchingChecksum() throws {
        let e = try entry("i.zeros", in: packed)
        var b = packedOriginal
        b[e.offset + 2] ^= 0xFF
        let crc = CRC32.checksum(Array(b[e.offset ..< e.offset + e.length]))
        try S.put(b, packed)
        try S.editTensor(packed, "i.zeros") { $0["crc32"] = .number(Double(crc)) }
        let f = try EdgeFile(path: packed)
        let z = try XCTUnwrap(f.entry(named: "i.zeros"))
        XCTAssertThrowsError(try f.floats(of: z)) {
            guard case .corruptPayload(_, .tensor("i.zeros"), e.offset, _)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try f.payload(of: z))
    }

    func testLyingOffsets() throws {
        let e = try entry("d.q8.sym")
        let previous = try entry("c.f16")
        let cases: [(Int, (EdgeFormatError?) -> Bool)] = [
            (e.offset + 1, { if case .badOffset(_, .tensor("d.q8.sym"), e.offset + 1, let why)? = $0 { return why.contains("multiple of 64") }; return false }),
            (1 << 40, { if case .badOffset(_, .tensor("d.q8.sym"), 1 << 40, let why)? = $0 { return why.contains("outside the data area") }; return false }),
            (0, { if case .badOffset(_, .tensor("d.q8.sym"), 0, let why)? = $0 { return why.contains("outside the data area") }; return false }),
            (previous.offset, { $0 == .overlap(file: self.path, item: .tensor("d.q8.sym"), offset: previous.offset, other: .tensor("c.f16"),
                                               otherEnd: previous.offset + previous.length) }),
        ]
        for (offset, matches) in cases {
            try S.put(original, path)
            try S.editTensor(path, "d.q8.sym") { $0["offset"] = .number(Double(offset)) }
            let err = S.openError(path)
            XCTAssertTrue(matches(err), "offset \(offset): \(String(describing: err))")
        }
        // Swapping two tensors' offsets keeps every range in bounds but breaks the packing (a gap, then an overlap).
        try S.put(original, path)
        try S.editTensor(path, "a.f32") { $0["offset"] = .number(Double(e.offset)) }
        try S.editTensor(path, "d.q8.sym") { $0["offset"] = 64 }
        XCTAssertNotNil(S.openError(path))
    }

    func testItemMovedIntoPaddingLeavesAGap() throws {
        // Grow the file's data area by 64 bytes in front of the header and move the blob up: in bounds, aligned, no overlap, but a gap.
        let f = try EdgeFile(path: path)
        let blob = try XCTUnwrap(f.blobs.first)
        var b = original
        let headerOffset = Int(S.readU64(b, 16))
        var header = Array(b[headerOffset...])
        b.removeSubrange(headerOffset...)
        b += [UInt8](repeating: 0, count: 64)
        let moved = Array(b[blob.offset ..< blob.offset + blob.length])
        b.replaceSubrange(blob.offset ..< headerOffset, with: [UInt8](repeating: 0, count: headerOffset - blob.offset))
        b.replaceSubrange(blob.offset + 64 ..< blob.offset + 64 + moved.count, with: moved)
        S.putLE(UInt64(headerOffset + 64), into: &b, at: 16)
        var tree = try header.withUnsafeBytes { try JSONValue.parse($0) }
        if case var .object(top) = tree, case var .object(bl) = top["blobs"]![0]! {
            bl["offset"] = .number(Double(blob.offset + 64))
            top["blobs"] = .array([.object(bl)])
            tree = .object(top)
        }
        header = try tree.jsonBytes()
        try S.replaceHeader(path, &b, offset: headerOffset + 64, with: header)
        guard case let .badOffset(_, item, offset, why)? = S.openError(path) else { return XCTFail() }
        XCTAssertEqual(item, .blob("tokenizer.json"))
        XCTAssertEqual(offset, blob.offset + 64)
        XCTAssertTrue(why.contains("gap"), why)
    }

    func testNonZeroPadding() throws {
        let e = try entry("a.f32")  // 60 bytes at 64: padding 124..<128
        XCTAssertEqual(e.length, 60)
        var b = original
        b[e.offset + 61] = 7
        try S.put(b, path)
        XCTAssertEqual(S.openError(path), .nonZeroPadding(file: path, offset: e.offset + 61))
    }

    func testLyingLengths() throws {
        try S.editTensor(path, "d.q8.sym") { $0["length"] = 200 }
        XCTAssertEqual(S.openError(path), .badLength(file: path, item: .tensor("d.q8.sym"), field: "length", expected: 76, actual: 200))
        // A shape that implies more elements than the payload holds is a length error too.
        try S.put(original, path)
        try S.editTensor(path, "a.f32") { $0["shape"] = [3, 6] }
        XCTAssertEqual(S.openError(path), .badLength(file: path, item: .tensor("a.f32"), field: "length", expected: 72, actual: 60))
        // Deflated: raw_length must match the shape; length may not reach into the next item.
        let z = try entry("i.zeros", in: packed)
        try S.editTensor(packed, "i.zeros") { $0["raw_length"] = 4100 }
        XCTAssertEqual(S.openError(packed), .badLength(file: packed, item: .tensor("i.zeros"), field: "raw_length", expected: 4096, actual: 4100))
        try S.put(packedOriginal, packed)
        try S.editTensor(packed, "i.zeros") { $0["length"] = .number(Double(z.length + 64)) }
        guard case .overlap(_, _, _, .tensor("i.zeros"), z.offset + z.length + 64)? = S.openError(packed) else { return XCTFail() }
        // Deflate cannot expand 3 bytes to 4096.
        try S.put(packedOriginal, packed)
        try S.editTensor(packed, "i.zeros") { $0["length"] = 3 }
        guard case .badHeader(_, "length", _)? = S.openError(packed) else { return XCTFail() }
    }

    func testUnknownEncodingsAndNMWithoutItsParams() throws {
        try S.editTensor(path, "a.f32") { $0["encoding"] = "q2" }
        XCTAssertEqual(S.openError(path), .unknownEncoding(file: path, tensor: "a.f32", encoding: "q2"))
        // nm (once reserved) is defined now: a tensor that claims it without its params is refused as such.
        try S.put(original, path)
        try S.editTensor(path, "a.f32") { $0["encoding"] = "nm" }
        XCTAssertEqual(S.openError(path), .badTensor(file: path, tensor: "a.f32", field: "params.m", why: "is missing; nm needs the group length"))
    }

    func testBadShapesAndParams() throws {
        let cases: [(String, (inout [String: JSONValue]) -> Void, String)] = [
            ("a.f32", { $0["shape"] = [] }, "shape"),
            ("a.f32", { $0["shape"] = [3, 0] }, "shape"),
            ("a.f32", { $0["shape"] = [-3, -5] }, "shape"),
            ("a.f32", { $0["shape"] = [1_073_741_824, 1_073_741_824] }, "shape"),
            ("a.f32", { $0["shape"] = [1, 1, 1, 1, 1, 1, 1, 1, 15] }, "shape"),
            ("a.f32", { $0["params"] = ["symmetric": true] }, "params"),
            ("d.q8.sym", { $0["shape"] = [21] }, "shape"),
            ("d.q8.sym", { $0["params"] = [:] }, "params.symmetric"),
            ("d.q8.sym", { $0["params"] = ["symmetric": true, "group_size": 32] }, "params.group_size"),
            ("f.q4.sym", { $0["params"] = ["symmetric": true, "group_size": 3] }, "params.group_size"),
            ("f.q4.sym", { $0["params"] = ["symmetric": true, "group_size": 0] }, "params.group_size"),
            ("f.q4.sym", { $0["params"] = ["symmetric": true] }, "params.group_size"),
            ("n.q3.sym", { $0["params"] = ["symmetric": true, "group_size": 4] }, "params.group_size"),
            ("n.q3.sym", { $0["params"] = ["symmetric": true, "group_size": 12] }, "params.group_size"),
            ("n.q3.sym", { $0["params"] = ["symmetric": true] }, "params.group_size"),
            ("n.q3.sym", { $0["params"] = ["group_size": 8] }, "params.symmetric"),
            ("n.q3.sym", { $0["shape"] = [63] }, "shape"),
            ("q.q4k.b6", { $0["params"] = ["group_size": 8, "sub_bits": 5] }, "params.sub_bits"),
            ("q.q4k.b6", { $0["params"] = ["group_size": 8] }, "params.sub_bits"),
            ("q.q4k.b6", { $0["params"] = ["group_size": 7, "sub_bits": 6] }, "params.group_size"),
            ("q.q4k.b6", { $0["params"] = ["group_size": 8, "sub_bits": 6, "symmetric": true] }, "params.symmetric"),
            ("q.q4k.b6", { $0["shape"] = [63] }, "shape"),
            ("f.q4.sym", { $0["params"] = ["symmetric": true, "group_size": 4, "sub_bits": 6] }, "params.sub_bits"),
            ("a.f32", { $0["nnz"] = 16 }, "nnz"),
            ("a.f32", { $0["nnz"] = -1 }, "nnz"),
        ]
        for (name, edit, field) in cases {
            try S.put(original, path)
            try S.editTensor(path, name, edit)
            guard case let .badTensor(_, tensor, f, _)? = S.openError(path) else { XCTFail("\(name) \(field)"); continue }
            XCTAssertEqual(tensor, name)
            XCTAssertEqual(f, field)
        }
    }

    func testHeaderJSONProblemsNameTheField() throws {
        let cases: [((inout JSONValue) -> Void, String, String)] = [
            ({ self.removeKey(&$0, "tensors", 0, "crc32") }, "tensors[0].crc32", "missing"),
            ({ self.removeKey(&$0, "config", nil, "hidden_size") }, "config.hidden_size", "missing"),
            ({ self.setKey(&$0, "tensors", 2, "offset", 1e30) }, "tensors[2].offset", "not an integer"),
            ({ self.setKey(&$0, "tensors", 2, "crc32", 4_294_967_296) }, "tensors[2].crc32", "not an integer"),
            ({ self.setKey(&$0, "tensors", 1, "length", "64") }, "tensors[1].length", "expected a number"),
            ({ self.setKey(&$0, "tensors", 1, "compression", "lz4") }, "tensors[1].compression", "lz4"),
            ({ self.setKey(&$0, "tensors", 1, "checksum", 1) }, "tensors[1].checksum", "unknown field"),
            ({ self.setKey(&$0, "config", nil, "qk_norm", true) }, "config.qk_norm", "unknown field"),
            ({ self.setKey(&$0, "config", nil, "architecture", "gpt3") }, "config.architecture", "gpt3"),
            ({ self.setKey(&$0, "provenance", nil, "toolchain", nil) }, "provenance.toolchain", "null"),
            ({ if case var .object(o) = $0 { o["extra"] = 1; $0 = .object(o) } }, "extra", "unknown field"),
            ({ if case var .object(o) = $0 { o["format"] = "gguf"; $0 = .object(o) } }, "format", "gguf"),
        ]
        for (edit, field, reason) in cases {
            try S.put(original, path)
            try S.editHeader(path, edit)
            guard case let .badHeader(_, f, why)? = S.openError(path) else { XCTFail(field); continue }
            XCTAssertEqual(f, field)
            XCTAssertTrue(why.contains(reason), "\(field): \(why)")
        }
    }

    func testHeaderThatIsNotJSON() throws {
        var b = original
        let offset = Int(S.readU64(b, 16))
        for (text, reason) in [("{\"format\":\"edge\",\"format\":\"edge\"}", "duplicate key"), ("{\"a\":1} x", "after the JSON"),
                               ("[1,2", "end of input"), ("{\"a\":NaN}", "unexpected character"), ("{\"a\":01}", "leading zero")] {
            try S.replaceHeader(path, &b, offset: offset, with: Array(text.utf8))
            guard case let .badHeader(_, "", why)? = S.openError(path) else { XCTFail(text); continue }
            XCTAssertTrue(why.contains(reason), "\(text): \(why)")
        }
        try S.replaceHeader(path, &b, offset: offset, with: [0x7B, 0xFF, 0xFE, 0x7D])
        guard case let .badHeader(_, "", why)? = S.openError(path) else { return XCTFail() }
        XCTAssertTrue(why.contains("UTF-8"), why)
    }

    func testDuplicateNames() throws {
        try S.editTensor(path, "b.f32.vector") { $0["name"] = "a.f32" }
        XCTAssertEqual(S.openError(path), .duplicateName(file: path, item: .tensor("a.f32")))
        try S.put(original, path)
        try S.editTensor(path, "b.f32.vector") { $0["name"] = "" }
        guard case .badHeader(_, "tensors[2].name", _)? = S.openError(path) else { return XCTFail() }
    }

    func testInvalidConfigAndProvenance() throws {
        try S.editHeader(path) { self.setKey(&$0, "config", nil, "num_kv_heads", 3) }
        guard case let .badConfig(_, why)? = S.openError(path) else { return XCTFail() }
        XCTAssertTrue(why.contains("num_kv_heads"), why)
        try S.put(original, path)
        try S.editHeader(path) { self.setKey(&$0, "provenance", nil, "source_sha256", "XYZ") }
        guard case .badProvenance(_, "source_sha256", _)? = S.openError(path) else { return XCTFail() }
        try S.put(original, path)
        try S.editHeader(path) { self.setKey(&$0, "provenance", nil, "recipe", nil) }
        guard case .badProvenance(_, "recipe", _)? = S.openError(path) else { return XCTFail() }
    }

    func testCompressionFieldsMustAgree() throws {
        try S.editTensor(path, "a.f32") { $0["raw_length"] = 60 }
        guard case .badHeader(_, "raw_length", _)? = S.openError(path) else { return XCTFail() }
        try S.editTensor(packed, "i.zeros") { $0.removeValue(forKey: "raw_length") }
        guard case .badHeader(_, "raw_length", _)? = S.openError(packed) else { return XCTFail() }
    }

    func testNotAFileAndEmptyFile() throws {
        guard case .io? = S.openError(dir + "/absent.edge") else { return XCTFail() }
        guard case .io? = S.openError(dir) else { return XCTFail() }
        try S.put([], path)
        XCTAssertEqual(S.openError(path), .truncated(file: path, what: "the preamble", needed: 64, size: 0))
        try S.put(Array("GGUF".utf8), path)
        guard case .notEdgeFile? = S.openError(path) else { return XCTFail() }
    }

    // MARK: JSON surgery helpers

    private func setKey(_ tree: inout JSONValue, _ section: String, _ index: Int?, _ key: String, _ value: JSONValue) {
        guard case var .object(top) = tree, var sec = top[section] else { return }
        if let index, case var .array(a) = sec, case var .object(o) = a[index] {
            o[key] = value
            a[index] = .object(o)
            sec = .array(a)
        } else if case var .object(o) = sec {
            o[key] = value
            sec = .object(o)
        }
        top[section] = sec
        tree = .object(top)
    }

    private func removeKey(_ tree: inout JSONValue, _ section: String, _ index: Int?, _ key: String) {
        guard case var .object(top) = tree, var sec = top[section] else { return }
        if let index, case var .array(a) = sec, case var .object(o) = a[index] {
            o.removeValue(forKey: key)
            a[index] = .object(o)
            sec = .array(a)
        } else if case var .object(o) = sec {
            o.removeValue(forKey: key)
            sec = .object(o)
        }
        top[section] = sec
        tree = .object(top)
    }
}
