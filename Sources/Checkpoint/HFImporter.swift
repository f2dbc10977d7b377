import EdgeFormat
import Foundation

/// Opens Hugging Face checkpoints: a folder with `config.json` and `model.safetensors` or a
/// sharded `model.safetensors.index.json`; a single `.safetensors` file (its `config.json`
/// beside it); or the index file itself. A `tokenizer.json` beside the weights is carried along.
///
/// Tensor names are mapped to the canonical ones of `ModelConfig.schema()` (table: `HFTensorNames`):
/// GPT-2's Conv1D weights (stored [in, out]) are transposed to [out, in] and its fused `c_attn`
/// is split into Q, K and V; buffers (`attn.bias`, `attn.masked_bias`, rotary `inv_freq`) and a
/// tied `lm_head.weight` are ignored. All conversions are lazy.
public enum HFImporter {
    /// Loads the checkpoint in `folder`.
    /// - Throws: `CheckpointError` naming the file and problem (no weights, bad header, bad
    ///   config, unknown/missing/mis-shaped tensor, ...).
    public static func load(folder: String) throws -> Checkpoint {
        let dir = URL(fileURLWithPath: folder)
        let index = dir.appendingPathComponent("model.safetensors.index.json").path
        let single = dir.appendingPathComponent("model.safetensors").path
        if FileManager.default.fileExists(atPath: index) {
            return try assemble(userPath: folder, folder: dir, weights: index, shards: try shards(index: index, folder: dir))
        }
        if FileManager.default.fileExists(atPath: single) {
            return try assemble(userPath: folder, folder: dir, weights: single, shards: [try SafetensorsFile(path: single)])
        }
        throw CheckpointError.unsupportedInput(path: folder, why: "the folder has neither model.safetensors nor model.safetensors.index.json")
    }

    /// Loads a single `.safetensors` file or a `*.safetensors.index.json` shard index; the
    /// `config.json` (and `tokenizer.json`, if any) are read from the same folder.
    /// - Throws: `CheckpointError` as `load(folder:)`.
    public static func load(file: String) throws -> Checkpoint {
        let dir = URL(fileURLWithPath: file).deletingLastPathComponent()
        if file.lowercased().hasSuffix(".index.json") {
            return try assemble(userPath: file, folder: dir, weights: file, shards: try shards(index: file, folder: dir))
        }
        return try assemble(userPath: file, folder: dir, weights: file, shards: [try SafetensorsFile(path: file)])
    }

    // MARK: - Sharded checkpoints

    /// Opens every shard named by the index once (in name order) and checks that the index and
    /// the shards agree exactly: each listed tensor is in its shard and each shard tensor is listed there.
    static func shards(index: String, folder: URL) throws -> [SafetensorsFile] {
        func bad(_ why: String) -> CheckpointError { .badHeader(file: index, why: why) }
        guard let data = FileManager.default.contents(atPath: index) else { throw CheckpointError.notFound(path: index) }
        let root = try JSONValue.hfObject(data, file: index, what: "the shard index")
        guard case let .object(map)? = root["weight_map"] else { throw bad("'weight_map' is missing or not an object") }
        var shardOf: [String: String] = [:]
        for (tensor, v) in map {
            guard case let .string(shard) = v else { throw bad("weight_map entry '\(tensor)' is \(v.hfKindName); expected a file name") }
            guard !shard.isEmpty, shard != ".", shard != "..", !shard.contains("/"), !shard.contains("\\") else {
                throw bad("weight_map entry '\(tensor)' names '\(shard)'; expected a file name in the index's folder")
            }
            shardOf[tensor] = shard
        }
        guard !shardOf.isEmpty else { throw bad("'weight_map' is empty") }

        let shardNames = Set(shardOf.values).sorted()
        let paths = shardNames.map { folder.appendingPathComponent($0).path }
        for (shard, path) in zip(shardNames, paths) where !FileManager.default.fileExists(atPath: path) {
            let example = shardOf.filter { $0.value == shard }.keys.sorted()[0]
            throw bad("shard \(Excerpt.quoted(shard)) (listed for tensor \(Excerpt.quoted(example))) does not exist in \(folder.path)")
        }
        var files: [String: SafetensorsFile] = [:]
        for (shard, path) in zip(shardNames, paths) {
            let file = try SafetensorsFile(path: path)
            for e in file.entries where shardOf[e.name] != shard {
                throw bad("tensor \(Excerpt.quoted(e.name)) of shard \(Excerpt.quoted(shard)) is not listed for that shard in weight_map")
            }
            files[shard] = file
        }
        for (tensor, shard) in shardOf.sorted(by: { $0.key < $1.key }) {
            if files[shard]?.entry(tensor) == nil {
                throw bad("weight_map puts tensor '\(tensor)' in '\(shard)', which does not contain it")
            }
        }
        return shardNames.compactMap { files[$0] }
    }

    // MARK: - Assembly

    /// Reads the config and tokenizer beside the weights and maps the shards' tensors.
    /// - Parameter weights: the index or single safetensors file, named in missing-tensor errors.
    private static func assemble(userPath: String, folder: URL, weights: String, shards: [SafetensorsFile]) throws -> Checkpoint {
        let configPath = folder.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw CheckpointError.unsupportedInput(path: userPath, why: "no config.json beside the weights in \(folder.path)")
        }
        var config = try HFConfig.load(path: configPath)
        if config.isEncoder {
            config.pooling = try SentenceTransformers.pooling(folder: folder, config: config, userPath: userPath)
            guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("tokenizer.json").path) else {
                throw CheckpointError.unsupportedInput(path: userPath, why: "the encoder has no tokenizer.json beside its weights; sentence embeddings need it")
            }
        }
        try config.validate(source: configPath)

        var sources: [(file: SafetensorsFile, entry: SafetensorsFile.Entry)] = []
        for f in shards {
            for e in f.entries { sources.append((f, e)) }
        }
        let mapper = NameMapper(config: config)
        var tensors: [SourceTensor] = []
        for (file, entry) in sources.sorted(by: { $0.entry.name < $1.entry.name }) {
            tensors += try mapper.map(entry, in: file)
        }
        let ordered = try Checkpoint.checkTensors(tensors, against: config, file: weights)
        let tok = try Checkpoint.runtimeTokenizer(try tokenizer(folder: folder), config: config,
                                                  file: folder.appendingPathComponent("tokenizer.json").path)
        return Checkpoint(path: userPath, format: .safetensors, config: config,
                          tokenizerJSON: tok.json, tensors: ordered, files: shards.map(\.mapped),
                          sourceMetadata: tok.warning.map { ["tokenizer_warning": $0] } ?? [:])
    }

    /// The bytes of `tokenizer.json` in `folder`, nil when absent.
    /// - Throws: `CheckpointError.badHeader` naming it when it is not a JSON object.
    static func tokenizer(folder: URL) throws -> Data? {
        let path = folder.appendingPathComponent("tokenizer.json").path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.badHeader(file: path, why: "cannot be read")
        }
        let parsed = try? JSONSerialization.jsonObject(with: data)
        guard parsed is [String: Any] else { throw CheckpointError.badHeader(file: path, why: "tokenizer.json is not a valid JSON object") }
        return data
    }
}

/// Maps one architecture's Hugging Face tensor names to canonical tensors, through the role-keyed
/// table `HFTensorNames` read backwards over the config's schema.
private struct NameMapper {
    let config: ModelConfig
    let schema: ModelSchema
    /// Hugging Face name -> the canonical tensor it holds (for fused Q/K/V: the Q part) and how it is stored.
    let sources: [String: (id: TensorID, form: HFTensor)]

    init(config: ModelConfig) {
        self.config = config
        schema = config.schema()
        var sources: [String: (id: TensorID, form: HFTensor)] = [:]
        for spec in schema {
            guard let form = HFTensorNames.form(of: spec.id, in: config.architecture) else { continue }
            if sources[form.name] == nil { sources[form.name] = (spec.id, form) }
        }
        // BERT checkpoints saved from a task model (`BertForMaskedLM`, ...) carry a `bert.` prefix.
        if config.architecture == .bert {
            for (name, source) in sources { sources["bert." + name] = source }
        }
        // GPT-2 checkpoints saved from `GPT2Model` lack the `transformer.` prefix.
        if config.architecture == .gpt2 {
            for (name, source) in sources where name.hasPrefix("transformer.") {
                let bare = String(name.dropFirst("transformer.".count))
                let form: HFTensor
                switch source.form {
                case .plain: form = .plain(bare)
                case .conv1D: form = .conv1D(bare)
                case .fusedQKV: form = .fusedQKV(bare)
                }
                sources[bare] = (source.id, form)
            }
        }
        self.sources = sources
    }

    /// The canonical tensors `entry` provides: none (an ignored buffer), one, or three (GPT-2's fused `c_attn`).
    /// - Throws: `.unexpectedTensor` for a name of no known role, `.unknownDType` for a tensor
    ///   that is not F32/F16/BF16, `.shapeMismatch` for a transposed or fused weight of the wrong shape.
    func map(_ entry: SafetensorsFile.Entry, in file: SafetensorsFile) throws -> [SourceTensor] {
        guard let (id, form) = sources[entry.name] else {
            if HFTensorNames.isIgnored(entry.name, config: config) { return [] }
            throw CheckpointError.unexpectedTensor(file: file.path, tensor: entry.name)
        }
        guard entry.dtype.isReadable else {
            throw CheckpointError.unknownDType(file: file.path, tensor: entry.name, dtype: entry.dtype.rawValue)
        }
        func tensor(_ id: TensorID, _ shape: [Int], bytes: Int, _ load: @escaping () throws -> [Float]) -> SourceTensor {
            SourceTensor(name: id.name, sourceName: entry.name, file: file.path, shape: shape, storage: entry.dtype.rawValue,
                         storedBytes: bytes, load: load)
        }
        switch form {
        case .plain:
            return [tensor(id, entry.shape, bytes: entry.byteCount) { try file.floats(entry) }]
        case .conv1D:
            // Conv1D stores [in, out]; canonical is [out, in].
            guard let canonical = schema.shape(of: id) else { throw CheckpointError.unexpectedTensor(file: file.path, tensor: entry.name) }
            let stored = Array(canonical.reversed())
            guard entry.shape == stored else {
                throw CheckpointError.shapeMismatch(file: file.path, tensor: entry.name, expected: stored, got: entry.shape)
            }
            return [tensor(id, canonical, bytes: entry.byteCount) {
                HFLayout.transpose(try file.floats(entry), rows: stored[0], cols: stored[1])
            }]
        case .fusedQKV:
            // Stored weight [hidden, q | k | v] (Conv1D), bias [q | k | v].
            let parts = [TensorRole.attnQ, .attnK, .attnV].map { TensorID(layer: id.layer, $0, bias: id.isBias) }
            let shapes = parts.compactMap { schema.shape(of: $0.weight) }
            guard shapes.count == 3 else { throw CheckpointError.unexpectedTensor(file: file.path, tensor: entry.name) }
            let widths = shapes.map { $0[0] }, hidden = shapes[0][1], fused = widths.reduce(0, +)
            let stored = id.isBias ? [fused] : [hidden, fused]
            guard entry.shape == stored else {
                throw CheckpointError.shapeMismatch(file: file.path, tensor: entry.name, expected: stored, got: entry.shape)
            }
            var out: [SourceTensor] = []
            var lo = 0
            for (part, width) in zip(parts, widths) {
                let columns = lo ..< lo + width
                let bytes = entry.byteCount / fused * width
                if id.isBias {
                    out.append(tensor(part, [width], bytes: bytes) { Array(try file.floats(entry)[columns]) })
                } else {
                    out.append(tensor(part, [width, hidden], bytes: bytes) {
                        HFLayout.transpose(try file.floats(entry), rows: hidden, cols: fused, columns: columns)
                    })
                }
                lo += width
            }
            return out
        }
    }
}

/// Layout helpers shared by the Hugging Face importer and exporter.
enum HFLayout {
    /// Transposes the row-major [rows, cols] matrix `m` (optionally only the columns in `columns`)
    /// into row-major [columns.count, rows]. Blocked, so both sides stay in cache.
    static func transpose(_ m: [Float], rows: Int, cols: Int, columns: Range<Int>? = nil) -> [Float] {
        let cr = columns ?? 0 ..< cols
        var out = [Float](repeating: 0, count: rows * cr.count)
        let tile = 32
        m.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r0 in stride(from: 0, to: rows, by: tile) {
                    for c0 in stride(from: cr.lowerBound, to: cr.upperBound, by: tile) {
                        for r in r0 ..< min(r0 + tile, rows) {
                            for c in c0 ..< min(c0 + tile, cr.upperBound) {
                                dst[(c - cr.lowerBound) * rows + r] = src[r * cols + c]
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
