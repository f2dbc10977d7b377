import EdgeFormat
import TestSupport
import XCTest

/// `MappedFile`'s two residencies hold the same bytes: the read-only map, and the private copy
/// (anonymous memory, 2 MB aligned, in huge pages where the kernel offers them).
final class ResidencyTests: TempDirTestCase {
    private func file(_ bytes: [UInt8]) throws -> String {
        let path = tmp.appendingPathComponent("f.bin").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testCopyHoldsTheFilesBytes() throws {
        // Larger than one 2 MB page and not a multiple of it, so the copy's rounding is exercised.
        var bytes = [UInt8](repeating: 0, count: (5 << 20) + 12345)
        var s: UInt32 = 2463534242
        for i in bytes.indices { s ^= s << 13; s ^= s >> 17; s ^= s << 5; bytes[i] = UInt8(truncatingIfNeeded: s) }
        let path = try file(bytes)
        let mapped = try MappedFile(path: path, residency: .map)
        let copied = try MappedFile(path: path, residency: .copy)
        XCTAssertEqual(mapped.residency, .map)
        XCTAssertEqual(copied.residency, .copy)
        XCTAssertEqual(copied.size, bytes.count)
        XCTAssertTrue(copied.bytes.elementsEqual(bytes))
        XCTAssertTrue(mapped.bytes.elementsEqual(copied.bytes))
        XCTAssertEqual(Int(bitPattern: copied.bytes.baseAddress!) % (2 << 20), 0, "the copy starts on a 2 MB boundary")
        // Releasing pages of a copy would zero them: it keeps its bytes.
        copied.release(0, 1 << 20)
        XCTAssertTrue(copied.bytes.prefix(1 << 20).elementsEqual(bytes.prefix(1 << 20)))
        XCTAssertEqual(try MappedFile(path: path, residency: .auto).residency, Residency.automatic(bytes: bytes.count))
        // A file larger than the memory there is is mapped, never copied.
        XCTAssertEqual(Residency.automatic(bytes: Int.max / 2), .map)
    }

    /// Huge pages are asked for over the whole 2 MB stretches only: the last, partly filled one
    /// (and the slack after it) is marked no-huge-page, so that it cannot be resident in full.
    /// Read back from the kernel's own record of each mapping (`VmFlags` in /proc/self/smaps:
    /// `hg` for MADV_HUGEPAGE, `nh` for MADV_NOHUGEPAGE); Linux only.
    func testHugePagesOnlyOverWholeStretches() throws {
        #if os(Linux)
        let huge = 2 << 20
        for size in [(5 << 20) + 12345, 4 << 20, 100] {
            guard let memory = AnonymousMemory(bytes: size) else { return XCTFail("no memory for \(size) bytes") }
            let start = Int(bitPattern: memory.bytes.baseAddress!)
            XCTAssertEqual(start % huge, 0, "starts on a 2 MB boundary")
            memory.bytes.storeBytes(of: 7, toByteOffset: size - 1, as: UInt8.self)  // the whole length is usable
            let whole = size / huge * huge
            if whole > 0 {
                XCTAssertEqual(Self.vmFlags(at: start), "hg", "\(size) bytes: the first stretch")
                XCTAssertEqual(Self.vmFlags(at: start + whole - 1), "hg", "\(size) bytes: the last whole stretch")
            }
            // The partly filled stretch, or the slack after the last whole one.
            XCTAssertEqual(Self.vmFlags(at: start + whole), "nh", "\(size) bytes: after the whole stretches")
            XCTAssertEqual(Self.vmFlags(at: start + size - 1), whole == size ? "hg" : "nh", "\(size) bytes: the last byte")
        }
        #endif
    }

    /// "hg", "nh" or "" for the mapping holding `address`, from /proc/self/smaps ("no mapping"
    /// when none holds it).
    private static func vmFlags(at address: Int) -> String {
        guard let bytes = readWholeFile("/proc/self/smaps") else { return "no smaps" }
        var inside = false
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            if let range = fields.first, range.contains("-"), !line.hasPrefix("VmFlags") {
                let ends = range.split(separator: "-").compactMap { Int($0, radix: 16) }
                inside = ends.count == 2 && ends[0] <= address && address < ends[1]
            } else if inside, line.hasPrefix("VmFlags:") {
                return fields.contains("hg") ? "hg" : fields.contains("nh") ? "nh" : ""
            }
        }
        return "no mapping"
    }

    func testEmptyAndMissingFiles() throws {
        let empty = try MappedFile(path: try file([]), residency: .copy)
        XCTAssertEqual(empty.size, 0)
        XCTAssertThrowsError(try MappedFile(path: tmp.appendingPathComponent("absent").path, residency: .copy)) { e in
            XCTAssertTrue("\(e)".contains("absent") && "\(e)".contains("cannot open"), "\(e)")
        }
    }

    /// An .edge file opened either way gives the same tensors.
    func testEdgeFileEitherWay() throws {
        let path = tmp.appendingPathComponent("m.edge").path
        let w = try EdgeWriter(path: path, config: EdgeGoldenTests.config,
                               provenance: Provenance(sourceSHA256: String(repeating: "0", count: 64), sourceFormat: "safetensors"))
        try w.add(.f32(name: "output_norm.weight", shape: [4], values: [1, 0.5, -2, 0]))
        try w.add(.q8(name: "blk.0.attn_q.weight", rows: 2, cols: 3, q: [0x01, 0x02, 0xFF, 0x81, 0x00, 0x7F], scales: [0.5, 0.25], zeros: nil))
        try w.finish()
        let a = try EdgeFile(path: path, residency: .map), b = try EdgeFile(path: path, residency: .copy)
        XCTAssertEqual(a.residency, .map)
        XCTAssertEqual(b.residency, .copy)
        XCTAssertEqual(a.tensors.map(\.name), b.tensors.map(\.name))
        for t in a.tensors { XCTAssertEqual(try a.floats(of: t), try b.floats(of: t), t.name) }
    }
}
