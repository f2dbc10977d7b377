import EdgeFormat
import Foundation

/// Reads an `.edge` file as an input checkpoint, so a compressed model can be inspected,
/// evaluated or compressed further. Tensors are dequantized to float32 lazily, one at a time.
public enum EdgeImporter {
    /// Opens `path` (validating it fully, checksums included) and exposes its tensors.
    ///
    /// The config comes from the header, the tokenizer from the "tokenizer.json" blob (nil if the
    /// file has none), and `sourceMetadata` from the provenance: "source_sha256", "source_format",
    /// "source_path" (when recorded), "toolchain", and "recipe", "passes", "metrics" as compact JSON.
    /// - Throws: `EdgeFormatError` for a malformed file; `CheckpointError` when its tensors are not
    ///   exactly those the config requires.
    public static func load(path: String) throws -> Checkpoint {
        let file = try EdgeFile(path: path)
        let tensors = file.tensors.map { entry in
            SourceTensor(name: entry.name, sourceName: entry.name, file: path, shape: entry.shape,
                         storage: entry.encoding.rawValue, storedBytes: entry.length,
                         load: { try file.floats(of: entry) })
        }
        let ordered = try Checkpoint.checkTensors(tensors, against: file.config, file: path)
        let p = file.provenance
        var meta: [String: String] = [
            "source_sha256": p.sourceSHA256,
            "source_format": p.sourceFormat,
            "toolchain": p.toolchain,
            "recipe": p.recipe.compactString,
            "passes": JSONValue.array(p.passes).compactString,
            "metrics": p.metrics.compactString,
        ]
        if let sourcePath = p.sourcePath { meta["source_path"] = sourcePath }
        // The tokenizer blob is checked as the runtime loads it, as for any other input.
        let tok = try Checkpoint.runtimeTokenizer(try file.blob(named: "tokenizer.json").map { Data($0) }, config: file.config, file: path)
        if let w = tok.warning { meta["tokenizer_warning"] = w }
        return Checkpoint(path: path, format: .edge, config: file.config, tokenizerJSON: tok.json,
                          tensors: ordered, files: [file.mappedFile], sourceMetadata: meta)
    }
}
