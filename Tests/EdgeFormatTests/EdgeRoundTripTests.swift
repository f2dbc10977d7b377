@testable import EdgeFormat
import Foundation
import TestSupport
import XCTest

final class EdgeRoundTripTests: XCTestCase {
    typealias S = EdgeTestSupport

    func testRoundTripEveryEncodingWithAndWithoutDeflate() throws {
        let dir = try S.scratchFolder(self)
        let samples = S.everyEncoding()
        for deflate in [false, true] {
            let path = dir + "/m-\(deflate).edge"
            try S.write(samples, to: path, deflate: deflate)
            let f = try EdgeFile(path: path)
            XCTAssertEqual(f.config, S.config)
            XCTAssertEqual(f.provenance, S.provenance)
            XCTAssertEqual(f.tensors.map(\.name), samples.map(\.tensor.name))
            XCTAssertEqual(try f.blob(named: "tokenizer.json"), S.tokenizer)
            XCTAssertNil(try f.blob(named: "absent"))
            XCTAssertEqual(f.fileSize, try S.bytes(path).count)
            for s in samples {
                let e = try XCTUnwrap(f.entry(named: s.tensor.name))
                XCTAssertEqual(e.shape, s.tensor.shape)
                XCTAssertEqual(e.encoding, s.tensor.encoding)
                XCTAssertEqual(e.params, s.tensor.params)
                XCTAssertEqual(e.offset % 64, 0)
                XCTAssertEqual(e.nnz, s.values.filter { $0 != 0 }.count)
                XCTAssertEqual(Array(try f.payload(of: e)), s.tensor.payload, "payload of \(e.name), deflate \(deflate)")
                XCTAssertEqual(try f.floats(of: e), s.values, "values of \(e.name), deflate \(deflate)")
                // The mapped or inflated payload starts 64-byte aligned, as the runtime expects.
                XCTAssertEqual(Int(bitPattern: try f.payload(of: e).baseAddress) % 64, 0)
            }
            let zeros = try XCTUnwrap(f.entry(named: "i.zeros"))
            XCTAssertEqual(zeros.compression, deflate ? .deflate : .none)
            XCTAssertEqual(zeros.rawLength, deflate ? 4096 : nil)
            if deflate { XCTAssertLessThan(zeros.length, 200) }
        }
    }

    func testDeflateIsOnlyUsedWhenItShrinks() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/m.edge"
        // 16 random bytes do not compress: the zlib stream would be longer than the payload.
        let noise = S.f32("noise", [4], seed: 9)
        try S.write([noise], to: path, deflate: true, blob: false)
        let e = try XCTUnwrap(EdgeFile(path: path).entry(named: "noise"))
        XCTAssertEqual(e.compression, .none)
        XCTAssertNil(e.rawLength)
    }

    func testWritingTwiceGivesIdenticalBytes() throws {
        let dir = try S.scratchFolder(self)
        for deflate in [false, true] {
            try S.write(S.everyEncoding(), to: dir + "/a.edge", deflate: deflate)
            try S.write(S.everyEncoding(), to: dir + "/b.edge", deflate: deflate)
            XCTAssertEqual(try S.bytes(dir + "/a.edge"), try S.bytes(dir + "/b.edge"), "deflate \(deflate)")
        }
    }

    func testPreambleLayoutAndHeaderAtTheEnd() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/m.edge"
        try S.write([S.f32("w", [2, 2], seed: 1)], to: path, deflate: false, blob: false)
        let b = try S.bytes(path)
        XCTAssertEqual(Array(b[0 ..< 8]), [0x45, 0x44, 0x47, 0x45, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(Array(b[8 ..< 16]), [1, 0, 0, 0, 0, 0, 0, 0])  // version 1 (no q3 or q4k tensor), flags 0
        // One 16-byte tensor at 64, padded to 128, then the header to the end of the file.
        XCTAssertEqual(S.readU64(b, 16), 128)
        XCTAssertEqual(S.readU64(b, 24), UInt64(b.count - 128))
        XCTAssertEqual(Array(b[36 ..< 64]), [UInt8](repeating: 0, count: 28))
        XCTAssertEqual(Array(b[80 ..< 128]), [UInt8](repeating: 0, count: 48))
        let header = String(decoding: b[128...], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix(#"{"blobs":[],"config":{"#), header)
        XCTAssertTrue(header.contains(#""tensors":[{"compression":"none","crc32":"#), header)
        XCTAssertFalse(header.contains(": ") || header.contains(", ") || header.contains("\n"), "compact JSON: \(header)")
        XCTAssertTrue(header.hasSuffix(#""version":1}"#), header)
    }

    /// Preamble and header say the oldest version that can express the file: 4 exactly when a tensor
    /// is q3s, else 3 exactly when a tensor is q4k, else 2 exactly when a tensor is q3; without any of
    /// them the file is version 1, byte for byte as before (EdgeGoldenTests).
    func testVersionIs4WithQ3SElse3WithQ4KElse2WithQ3Else1() throws {
        let dir = try S.scratchFolder(self)
        let all = S.everyEncoding()
        let newer: Set<Encoding> = [.q3, .q4k, .q3s]
        let v1 = all.filter { !newer.contains($0.tensor.encoding) }
        let onlyQ3 = all.filter { $0.tensor.encoding == .q3 }
        let onlyQ4K = all.filter { $0.tensor.encoding == .q4k }
        let onlyQ3S = all.filter { $0.tensor.encoding == .q3s }
        XCTAssertFalse(onlyQ3.isEmpty || onlyQ4K.isEmpty || onlyQ3S.isEmpty)
        let noQ3S = all.filter { $0.tensor.encoding != .q3s }
        let cases: [([S.Sample], UInt32)] = [
            (all, 4), (onlyQ3S, 4), (v1 + onlyQ3S.prefix(1), 4), (onlyQ3 + onlyQ3S, 4),
            (noQ3S, 3), (onlyQ4K, 3), (Array(onlyQ4K.prefix(1)), 3), (v1 + onlyQ4K.prefix(1), 3), (onlyQ3 + onlyQ4K, 3),
            (noQ3S.filter { $0.tensor.encoding != .q4k }, 2), (onlyQ3, 2), (Array(onlyQ3.prefix(1)), 2), (v1, 1), ([], 1),
        ]
        for (samples, version) in cases {
            for deflate in [false, true] {
                let path = dir + "/m-\(version)-\(samples.count)-\(samples.first?.tensor.name ?? "")-\(deflate).edge"
                try S.write(samples, to: path, deflate: deflate)
                let b = try S.bytes(path)
                XCTAssertEqual(Array(b[8 ..< 16]), [UInt8(version), 0, 0, 0, 0, 0, 0, 0], path)
                XCTAssertTrue(String(decoding: b[Int(S.readU64(b, 16))...], as: UTF8.self).hasSuffix("\"version\":\(version)}"), path)
                let f = try EdgeFile(path: path)
                XCTAssertEqual(f.preamble.version, version, path)
                XCTAssertEqual(f.header.version, Int(version), path)
                for s in samples { XCTAssertEqual(try f.floats(of: XCTUnwrap(f.entry(named: s.tensor.name))), s.values, s.tensor.name) }
            }
        }
        XCTAssertEqual(EdgePreamble.version(for: Encoding.allCases.filter { !newer.contains($0) }), 1)
        XCTAssertEqual(EdgePreamble.version(for: [.f32, .q3]), 2)
        XCTAssertEqual(EdgePreamble.version(for: [.q4k, .f32]), 3)
        XCTAssertEqual(EdgePreamble.version(for: [.q3, .q4k]), 3)
        XCTAssertEqual(EdgePreamble.version(for: [.q3s, .q4k, .f32]), 4)
        XCTAssertEqual(EdgePreamble.version(for: Encoding.allCases), 4)
        XCTAssertEqual(EdgePreamble.currentVersion, 4)
    }

    func testDroppingTheWriterUnfinishedLeavesNoFile() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/m.edge"
        do {
            let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance)
            try w.add(S.f32("w", [4, 4], seed: 1).tensor)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).count, 1, "the temporary file exists while writing")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [], "no temporary file is left behind")
    }

    func testAFailedWriteKeepsTheOldDestinationAndRefusesToFinish() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/m.edge"
        try S.write([S.f32("w", [2], seed: 1)], to: path, deflate: false)
        let before = try S.bytes(path)
        let w = try EdgeWriter(path: path, config: S.config, provenance: S.provenance)
        try w.add(S.f32("w", [2], seed: 2).tensor)
        XCTAssertThrowsError(try w.add(S.f32("w", [2], seed: 3).tensor)) {
            XCTAssertEqual($0 as? EdgeFormatError, .duplicateName(file: path, item: .tensor("w")))
        }
        var bad = S.f32("x", [2, 2], seed: 1).tensor
        bad.payload.removeLast()
        XCTAssertThrowsError(try w.add(bad)) {
            XCTAssertEqual($0 as? EdgeFormatError, .badLength(file: path, item: .tensor("x"), field: "payload", expected: 16, actual: 15))
        }
        XCTAssertThrowsError(try w.add(EncodedTensor(name: "s", shape: [2, 2], encoding: .nm, payload: []))) {
            XCTAssertEqual($0 as? EdgeFormatError, .badTensor(file: path, tensor: "s", field: "params.m", why: "is missing; nm needs the group length"))
        }
        XCTAssertThrowsError(try w.add(EncodedTensor(name: "s", shape: [2, 2], encoding: .csr, payload: []))) {
            XCTAssertEqual($0 as? EdgeFormatError, .badTensor(file: path, tensor: "s", field: "nnz", why: "is missing; csr needs it (its size depends on it)"))
        }
        XCTAssertEqual(try S.bytes(path), before, "the destination is untouched until finish()")
        try w.finish()
        XCTAssertThrowsError(try w.finish()) { XCTAssertTrue("\($0)".contains("already finished"), "\($0)") }
        XCTAssertNotEqual(try S.bytes(path), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["m.edge"])
    }

    func testRefusesToOverwriteAnInput() throws {
        let dir = try S.scratchFolder(self)
        let input = dir + "/model.safetensors"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: input))
        XCTAssertThrowsError(try EdgeWriter(path: dir + "/./model.safetensors", protecting: [input], config: S.config, provenance: S.provenance)) {
            guard case let .io(_, why)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("refusing to overwrite"), why)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), Data("precious".utf8))
    }

    func testWriterRefusesBadConfigAndProvenance() throws {
        let dir = try S.scratchFolder(self)
        var cfg = S.config
        cfg.hiddenSize = 0
        XCTAssertThrowsError(try EdgeWriter(path: dir + "/a.edge", config: cfg, provenance: S.provenance)) {
            guard case let .badConfig(_, why)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("hidden_size"), why)
        }
        var prov = S.provenance
        prov.metrics = ["ppl": .number(.infinity)]
        XCTAssertThrowsError(try EdgeWriter(path: dir + "/a.edge", config: S.config, provenance: prov)) {
            guard case let .badProvenance(_, field, _)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertEqual(field, "metrics.ppl")
        }
        prov = S.provenance
        prov.sourceSHA256 = "abc"
        XCTAssertThrowsError(try EdgeWriter(path: dir + "/a.edge", config: S.config, provenance: prov)) {
            guard case let .badProvenance(_, field, _)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertEqual(field, "source_sha256")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    func testProvenanceCanBeUpdatedBeforeFinish() throws {
        let dir = try S.scratchFolder(self)
        let w = try EdgeWriter(path: dir + "/a.edge", config: S.config, provenance: S.provenance)
        try w.add(S.f32("w", [3], seed: 1).tensor)
        w.provenance.metrics = ["kl": 0.125]
        try w.finish()
        XCTAssertEqual(try EdgeFile(path: dir + "/a.edge").provenance.metrics, ["kl": 0.125])
    }

    func testPayloadOfAForeignEntryIsRefused() throws {
        let dir = try S.scratchFolder(self)
        try S.write([S.f32("w", [3], seed: 1)], to: dir + "/a.edge", deflate: false)
        let f = try EdgeFile(path: dir + "/a.edge")
        var e = try XCTUnwrap(f.entry(named: "w"))
        e.shape = [1, 3]
        XCTAssertThrowsError(try f.floats(of: e)) {
            XCTAssertEqual($0 as? EdgeFormatError, .noSuchItem(file: dir + "/a.edge", item: .tensor("w")))
        }
    }

    func testConcurrentPayloadReadsOfDeflatedTensors() throws {
        let dir = try S.scratchFolder(self)
        let samples = S.everyEncoding()
        try S.write(samples, to: dir + "/a.edge", deflate: true)
        let f = try EdgeFile(path: dir + "/a.edge")
        let expected = samples.map(\.values)
        let ok = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 64)
        defer { ok.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let k = i % samples.count
            let e = f.tensors[k]
            ok[i] = (try? f.payload(of: e)).map { decodePayload($0, encoding: e.encoding, shape: e.shape, params: e.params) } == expected[k]
        }
        XCTAssertTrue(ok.allSatisfy { $0 })
    }

    /// The Python reader decodes csr (8- and 16-bit column indices) and bitmask payloads, with f32,
    /// f16 and q8 (symmetric and not) values, to the values the writer packed: sparse matrices with
    /// empty rows and gaps over 256 columns, and dense q8 ones.
    func testIndependentPythonReaderDecodesSparse() throws {
        guard pythonWithNumpy else { throw XCTSkip("python3 with numpy is not available") }
        let dir = try S.scratchFolder(self)
        func sparse(_ s: S.Sample, keep: (Int) -> Bool) -> S.Sample {
            let v = s.values.enumerated().map { keep($0.offset) ? $0.element : 0 }
            let t: EncodedTensor = s.tensor.encoding == .f16 ? .f16(name: s.tensor.name, shape: s.tensor.shape, values: v)
                : .f32(name: s.tensor.name, shape: s.tensor.shape, values: v)
            return S.Sample(tensor: t, values: v)
        }
        var samples: [S.Sample] = []
        for target in [Encoding.csr, .bitmask] {
            let bases = [
                sparse(S.f32("a.f32.\(target)", [5, 40], seed: 31)) { $0 % 3 == 0 && $0 / 40 != 2 },  // row 2 empty
                sparse(S.f32("b.wide.\(target)", [3, 700], seed: 32)) { [5, 400, 699].contains($0 % 700) },  // gaps over 256
                sparse(S.f16("c.f16.\(target)", [4, 24], seed: 33)) { ($0 * 7) % 5 < 2 },
                S.q8("d.q8.sym.\(target)", rows: 3, cols: 19, symmetric: true, seed: 34),
                S.q8("e.q8.asym.\(target)", rows: 4, cols: 9, symmetric: false, seed: 35),
            ]
            for b in bases {
                let p = try XCTUnwrap(b.tensor.packedSparse(as: target), b.tensor.name)
                samples.append(S.Sample(tensor: p, values: b.values))
            }
        }
        XCTAssertEqual(Set(samples.filter { $0.tensor.encoding == .csr }.compactMap(\.tensor.params.indexWidth)), [8, 16])
        let path = dir + "/sparse.edge"
        try S.write(samples, to: path, deflate: false)
        let (status, out, err) = try run(["python3", scriptPath("edge_read.py"), "--json", path])
        XCTAssertEqual(status, 0, err)
        let doc = try JSONValue.parse(Array(out.utf8))
        for s in samples {
            let t = try XCTUnwrap(doc["tensors"]?[s.tensor.name], s.tensor.name)
            XCTAssertEqual(t["encoding"]?.stringValue, s.tensor.encoding.rawValue)
            let values = try XCTUnwrap(t["values"]?.arrayValue).map { Float($0.doubleValue ?? .nan) }
            XCTAssertEqual(values, try EdgeFile(path: path).floats(of: XCTUnwrap(EdgeFile(path: path).entry(named: s.tensor.name))), s.tensor.name)
            XCTAssertEqual(values, s.values, s.tensor.name)
        }
    }

    /// The independent Python reader (scripts/edge_read.py, written from docs/edge-format.md with
    /// numpy only) reads a file from this writer to the same values: the spec is enough.
    func testIndependentPythonReaderAgrees() throws {
        guard pythonWithNumpy else { throw XCTSkip("python3 with numpy is not available") }

        let dir = try S.scratchFolder(self)
        let script = scriptPath("edge_read.py")
        let samples = S.everyEncoding()
        for deflate in [false, true] {
            let path = dir + "/m-\(deflate).edge"
            try S.write(samples, to: path, deflate: deflate)
            let (status, out, err) = try run(["python3", script, "--json", path])
            XCTAssertEqual(status, 0, err)
            let doc = try JSONValue.parse(Array(out.utf8))
            XCTAssertEqual(doc["config"], try JSONValue(encoding: S.config))
            XCTAssertEqual(doc["provenance"], try JSONValue(encoding: S.provenance))
            XCTAssertEqual(doc["blobs"]?["tokenizer.json"]?.stringValue, String(decoding: S.tokenizer, as: UTF8.self))
            for s in samples {
                let t = try XCTUnwrap(doc["tensors"]?[s.tensor.name], s.tensor.name)
                XCTAssertEqual(t["shape"], .array(s.tensor.shape.map { .number(Double($0)) }))
                let values = try XCTUnwrap(t["values"]?.arrayValue).map { Float($0.doubleValue ?? .nan) }
                XCTAssertEqual(values, s.values, "python values of \(s.tensor.name), deflate \(deflate)")
            }
        }
        // The Python reader also refuses a corrupt tensor, naming it.
        var b = try S.bytes(dir + "/m-false.edge")
        let e = try XCTUnwrap(EdgeFile(path: dir + "/m-false.edge").entry(named: "d.q8.sym"))
        b[e.offset + 3] ^= 0x40
        try S.put(b, dir + "/bad.edge")
        let (status, _, err) = try run(["python3", script, "--json", dir + "/bad.edge"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("d.q8.sym") && err.contains("CRC32"), err)
        // ... and an nm tensor whose in-group indices are not increasing (its CRC32 fixed), naming it.
        var c = try S.bytes(dir + "/m-false.edge")
        let n = try XCTUnwrap(EdgeFile(path: dir + "/m-false.edge").entry(named: "j.nm24.q8.sym"))
        c[n.offset] = 0b0000_0101  // row 0, group 0: indices 1, 1
        try S.put(c, dir + "/bad-nm.edge")
        let crc = CRC32.checksum(Array(c[n.offset ..< n.offset + n.length]))
        try S.editTensor(dir + "/bad-nm.edge", "j.nm24.q8.sym") { $0["crc32"] = .number(Double(crc)) }
        XCTAssertNotNil(S.openError(dir + "/bad-nm.edge"))
        let (nmStatus, _, nmErr) = try run(["python3", script, "--json", dir + "/bad-nm.edge"])
        XCTAssertNotEqual(nmStatus, 0)
        XCTAssertTrue(nmErr.contains("j.nm24.q8.sym") && nmErr.contains("increasing"), nmErr)
        // ... and q3 tensors with a zero point above 7 or a padding bit set, q4 tensors with a zero point
        // above 15, an infinite scale or a padding bit set, q4k tensors with a negative or infinite
        // super-scale or super-min or a padding bit set (their CRC32 fixed), naming them.
        let q3 = try XCTUnwrap(EdgeFile(path: dir + "/m-false.edge").entry(named: "o.q3.asym"))
        guard case let .q3(l3)? = PayloadLayout(encoding: q3.encoding, shape: q3.shape, params: q3.params) else { return XCTFail() }
        let q3sym = try XCTUnwrap(EdgeFile(path: dir + "/m-false.edge").entry(named: "n.q3.sym"))
        let q4 = try XCTUnwrap(EdgeFile(path: dir + "/m-false.edge").entry(named: "g.q4.asym"))
        guard case let .q4(l4)? = PayloadLayout(encoding: q4.encoding, shape: q4.shape, params: q4.params) else { return XCTFail() }
        let q4k = try XCTUnwrap(EdgeFile(path: dir + "/m-false.edge").entry(named: "q.q4k.b6"))
        guard case let .q4k(lk)? = PayloadLayout(encoding: q4k.encoding, shape: q4k.shape, params: q4k.params) else { return XCTFail() }
        for (bad, entry, at, byte, words) in [("bad-q3-zero", q3, l3.zeroOffset + 3, UInt8(8), "zero point"),
                                              ("bad-q3-pad", q3sym, 7, UInt8(0x80), "padding bits"),
                                              ("bad-q4-zero", q4, l4.zeroOffset + 3, UInt8(16), "zero point"),
                                              ("bad-q4-scale", q4, l4.scaleOffset + 1, UInt8(0x7C), "scale is not finite"),
                                              ("bad-q4-pad", q4, l4.rowBytes - 1, UInt8(0xF0), "padding bits"),
                                              ("bad-q4k-neg", q4k, lk.superOffset + 4 + 1, UInt8(0x80), "super-scale D is negative"),
                                              ("bad-q4k-minf", q4k, lk.superOffset + 2 + 1, UInt8(0x7C), "super-min M is not finite"),
                                              ("bad-q4k-sub", q4k, lk.subOffset + lk.subRowBytes - 1, UInt8(0xF0), "sub-parameter padding bits"),
                                              ("bad-q4k-pad", q4k, lk.rowBytes - 1, UInt8(0x10), "q4k padding bits")] {
            var d = try S.bytes(dir + "/m-false.edge")
            d[entry.offset + at] = byte
            try S.put(d, dir + "/\(bad).edge")
            let crc3 = CRC32.checksum(Array(d[entry.offset ..< entry.offset + entry.length]))
            try S.editTensor(dir + "/\(bad).edge", entry.name) { $0["crc32"] = .number(Double(crc3)) }
            XCTAssertNotNil(S.openError(dir + "/\(bad).edge"))
            let (q3Status, _, q3Err) = try run(["python3", script, "--json", dir + "/\(bad).edge"])
            XCTAssertNotEqual(q3Status, 0)
            XCTAssertTrue(q3Err.contains(entry.name) && q3Err.contains(words), q3Err)
        }
        // ... and checks the version: q3 in a version-1 file, q4k in a version-2 file, q3s in a version-3
        // file and version 5 are refused.
        for (bad, version, words) in [("q3-in-v1", UInt32(1), "tensor 'n.q3.sym': q3 needs format version 2, the file says 1"),
                                      ("q4k-in-v2", 2, "tensor 'q.q4k.b6': q4k needs format version 3, the file says 2"),
                                      ("q3s-in-v3", 3, "tensor 't.q3s.b6': q3s needs format version 4, the file says 3"),
                                      ("v5", 5, "version 5; this reader understands up to v4")] {
            var d = try S.bytes(dir + "/m-false.edge")
            S.putLE(version, into: &d, at: 8)
            try S.put(d, dir + "/\(bad).edge")
            try S.editHeader(dir + "/\(bad).edge") { tree in
                guard case var .object(o) = tree else { return }
                o["version"] = .number(Double(version))
                tree = .object(o)
            }
            XCTAssertNotNil(S.openError(dir + "/\(bad).edge"))
            let (vStatus, _, vErr) = try run(["python3", script, "--json", dir + "/\(bad).edge"])
            XCTAssertNotEqual(vStatus, 0)
            XCTAssertTrue(vErr.contains(words), vErr)
        }
    }

    /// Runs `args` through /usr/bin/env: (exit status, stdout, stderr).
    private func run(_ args: [String]) throws -> (Int32, String, String) {
        let r = try runTool("/usr/bin/env", args)
        return (r.code, r.stdout, r.stderr)
    }
}
