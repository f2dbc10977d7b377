import EdgeFormat
import Foundation

/// The state of an interrupted training run, in `<folder>/student.ckpt`: the trainable tensors'
/// latent values and AdamW moments plus the step and the log, so a resumed run continues exactly
/// where it stopped. Written atomically (temporary file + rename): an interrupted save leaves the
/// previous checkpoint whole.
///
/// Layout: "EDGECKPT", u64 LE length of a JSON header (`fingerprint`, `step`, `tensors`:
/// [{name, count}], `log`, `heldOutBefore`), the header, then per tensor in header order `count` f32 values,
/// `count` f32 first moments and `count` f32 second moments (little-endian; bf16 moments are
/// written widened to f32 and narrowed again, exactly, on load).
struct TrainCheckpoint {
    let folder: String
    let fingerprint: String
    var path: String { folder + "/student.ckpt" }
    static let magic = Array("EDGECKPT".utf8)

    struct Header: Codable {
        var fingerprint: String
        var step: Int
        var tensors: [Entry]
        var log: [TrainLogEntry]
        var heldOutBefore: Double?
        struct Entry: Codable { var name: String; var count: Int }
    }

    struct State { var log: [TrainLogEntry]; var heldOutBefore: Double? }

    func save(optimizer: AdamW<Float>, log: [TrainLogEntry], heldOutBefore: Double?) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let header = Header(fingerprint: fingerprint, step: optimizer.step,
                            tensors: optimizer.params.map { .init(name: $0.name, count: $0.value.count) }, log: log,
                            heldOutBefore: heldOutBefore)
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = try encoder.encode(header)
        let out = try AtomicOutput(destination: path)
        try out.write(Self.magic)
        var n = UInt64(json.count).littleEndian
        try withUnsafeBytes(of: &n) { try out.write($0) }
        try json.withUnsafeBytes { try out.write($0) }
        for (i, p) in optimizer.params.enumerated() {
            try out.write(UnsafeRawBufferPointer(start: p.value.p, count: p.value.count * 4))
            for moment in [optimizer.m[i], optimizer.v[i]] {
                try moment.floats.withUnsafeBytes { try out.write($0) }
            }
        }
        try out.commit()
    }

    /// Loads the checkpoint into the optimizer's parameters and moments; nil when there is none.
    /// - Throws: `TrainingError.badCheckpoint` for a truncated file, another run's checkpoint or other tensors.
    func load(into optimizer: AdamW<Float>) throws -> State? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        func bad(_ why: String) -> TrainingError { .badCheckpoint(path: path, why: why) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw bad("cannot be read (\(error.localizedDescription))")
        }
        guard data.count >= 16, Array(data.prefix(8)) == Self.magic else { throw bad("is not a training checkpoint (bad magic)") }
        let len = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))) }
        guard len > 0, len <= data.count - 16 else { throw bad("is truncated (header)") }
        let header: Header
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { header = try decoder.decode(Header.self, from: data.subdata(in: 16 ..< 16 + len)) } catch {
            throw bad("has an unreadable header")
        }
        guard header.fingerprint == fingerprint else {
            throw bad("was written by a different run (model, recipe, options or text differ); remove it or choose another --checkpoint-dir")
        }
        let params = optimizer.params
        guard header.tensors.count == params.count,
              zip(header.tensors, params).allSatisfy({ $0.name == $1.name && $0.count == $1.value.count }) else {
            throw bad("holds other tensors than this run trains")
        }
        let need = 16 + len + params.reduce(0) { $0 + $1.value.count * 12 }
        guard data.count == need else { throw bad("is truncated or has trailing bytes (\(data.count) bytes, expected \(need))") }
        guard header.step >= 0, header.step <= optimizer.config.totalSteps else { throw bad("has step \(header.step) outside 0...\(optimizer.config.totalSteps)") }
        data.withUnsafeBytes { raw in
            var off = 16 + len
            for (i, p) in params.enumerated() {
                let n = p.value.count
                UnsafeMutableRawBufferPointer(start: p.value.p, count: n * 4).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[off ..< off + n * 4]))
                off += n * 4
                for moment in [optimizer.m[i], optimizer.v[i]] {
                    var f = [Float](repeating: 0, count: n)
                    f.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[off ..< off + n * 4])) }
                    f.withUnsafeBufferPointer { moment.load($0) }
                    off += n * 4
                }
            }
        }
        optimizer.step = header.step
        return State(log: header.log, heldOutBefore: header.heldOutBefore)
    }
}
