import EdgeFormat
import Foundation

extension Checkpoint {
    /// Opens any supported input: a Hugging Face folder (config.json + model.safetensors or a
    /// sharded index), a single `.safetensors` beside its `config.json`, a `.gguf` file, or an `.edge` file.
    /// - Throws: `CheckpointError` naming the file and the problem.
    public static func open(_ path: String) throws -> Checkpoint {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CheckpointError.notFound(path: path)
        }
        if isDir.boolValue { return try HFImporter.load(folder: path) }
        let lower = path.lowercased()
        if lower.hasSuffix(".safetensors") || lower.hasSuffix(".safetensors.index.json") { return try HFImporter.load(file: path) }
        if lower.hasSuffix(".gguf") { return try GGUFImporter.load(path: path) }
        if lower.hasSuffix(".edge") { return try EdgeImporter.load(path: path) }
        // Unknown extension: sniff the magic.
        let f = try MappedFile(path: path)
        if f.size >= 4 {
            let magic = f.bytes.loadUnaligned(as: UInt32.self)
            if magic == 0x4655_4747 { return try GGUFImporter.load(path: path) }  // "GGUF"
            if f.size >= 8, Array(f.bytes[0 ..< 4]) == Array("EDGE".utf8) { return try EdgeImporter.load(path: path) }
        }
        throw CheckpointError.unsupportedInput(path: path, why: "expected a Hugging Face folder, a .safetensors, a .gguf or an .edge file")
    }
}
