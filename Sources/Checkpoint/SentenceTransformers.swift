import EdgeFormat
import Foundation

/// The sentence-transformers files beside an encoder's Hugging Face folder: `modules.json` (which
/// modules follow the transformer: `Pooling`, `Normalize`), the pooling module's `config.json`
/// (`1_Pooling/config.json`) and `sentence_bert_config.json` (`max_seq_length`). Read into
/// `ModelConfig.Pooling` on import, written back on export.
enum SentenceTransformers {
    /// The pooling of the encoder in `folder`.
    /// - Throws: `CheckpointError.unsupportedInput` when the folder has no pooling config;
    ///   `.badConfig` naming the file and field for a mode this runtime does not implement, a
    ///   dimension other than `hidden_size`, or a module list without a pooling module.
    static func pooling(folder: URL, config: ModelConfig, userPath: String) throws -> ModelConfig.Pooling {
        var poolingDir = "1_Pooling", normalize = false
        let modulesPath = folder.appendingPathComponent("modules.json").path
        if let data = FileManager.default.contents(atPath: modulesPath) {
            let v: JSONValue
            do { v = try data.withUnsafeBytes { try JSONValue.parse($0) } } catch {
                throw CheckpointError.badHeader(file: modulesPath, why: "modules.json is not valid JSON: \(error)")
            }
            guard case let .array(modules) = v else {
                throw CheckpointError.badConfig(file: modulesPath, field: "(root)", why: "must be a list of modules, found \(v.kindName)")
            }
            var sawPooling = false
            for (i, m) in modules.enumerated() {
                guard case let .object(o) = m, case let .string(type)? = o["type"] else {
                    throw CheckpointError.badConfig(file: modulesPath, field: "[\(i)].type", why: "is missing or not a string")
                }
                let path: String
                if case let .string(p)? = o["path"] { path = p } else { path = "" }
                switch type.split(separator: ".").last.map(String.init) ?? type {
                case "Transformer": continue
                case "Pooling":
                    sawPooling = true
                    guard !path.isEmpty, !path.contains(".."), !path.hasPrefix("/") else {
                        throw CheckpointError.badConfig(file: modulesPath, field: "[\(i)].path", why: "is \(Excerpt.quoted(path)); expected a folder inside the model folder")
                    }
                    poolingDir = path
                case "Normalize": normalize = true
                default:
                    throw CheckpointError.badConfig(file: modulesPath, field: "[\(i)].type",
                                                    why: "is \(Excerpt.quoted(type)); only Transformer, Pooling and Normalize modules are supported")
                }
            }
            guard sawPooling else { throw CheckpointError.badConfig(file: modulesPath, field: "(root)", why: "lists no Pooling module") }
        }
        let poolingPath = folder.appendingPathComponent(poolingDir).appendingPathComponent("config.json").path
        guard let data = FileManager.default.contents(atPath: poolingPath) else {
            throw CheckpointError.unsupportedInput(path: userPath, why: "the encoder has no pooling config (\(poolingDir)/config.json, sentence-transformers' Pooling module); sentence embeddings need one")
        }
        let f = HFConfig.Fields(root: try JSONValue.hfObject(data, file: poolingPath, what: "the pooling config"), file: poolingPath)
        let dim = try f.int("word_embedding_dimension")
        guard dim == config.hiddenSize else {
            throw f.bad("word_embedding_dimension", "is \(dim); the model's hidden_size is \(config.hiddenSize)")
        }
        var modes: [ModelConfig.Pooling.Mode] = []
        for (key, mode) in [("pooling_mode_cls_token", ModelConfig.Pooling.Mode.cls), ("pooling_mode_mean_tokens", .mean),
                            ("pooling_mode_max_tokens", .max)] where try f.bool(key, default: false) {
            modes.append(mode)
        }
        for key in ["pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"] where try f.bool(key, default: false) {
            throw f.bad(key, "is true; only cls, mean and max pooling are supported")
        }
        guard modes.count == 1 else {
            throw f.bad("pooling_mode_mean_tokens", modes.isEmpty ? "no pooling mode is true; expected exactly one of cls, mean, max"
                        : "\(modes.count) pooling modes are true (\(modes.map(\.rawValue).joined(separator: ", "))); concatenated poolings are unsupported")
        }
        var maxTokens: Int?
        let sbertPath = folder.appendingPathComponent("sentence_bert_config.json").path
        if let data = FileManager.default.contents(atPath: sbertPath) {
            let s = HFConfig.Fields(root: try JSONValue.hfObject(data, file: sbertPath, what: "sentence_bert_config.json"), file: sbertPath)
            if s.value("max_seq_length") != nil {
                let m = try s.int("max_seq_length")
                guard m >= 3 else { throw s.bad("max_seq_length", "is \(m); expected at least 3") }
                maxTokens = min(m, config.maxPositions)
            }
        }
        return ModelConfig.Pooling(mode: modes[0], normalize: normalize, maxTokens: maxTokens)
    }

    /// The files sentence-transformers reads for `pooling` (relative path, bytes): modules.json,
    /// 1_Pooling/config.json, sentence_bert_config.json (when `max_tokens` is set).
    static func files(for pooling: ModelConfig.Pooling, hidden: Int) throws -> [(path: String, data: Data)] {
        var modules: [JSONValue] = [
            .object(["idx": .number(0), "name": .string("0"), "path": .string(""), "type": .string("sentence_transformers.models.Transformer")]),
            .object(["idx": .number(1), "name": .string("1"), "path": .string("1_Pooling"), "type": .string("sentence_transformers.models.Pooling")]),
        ]
        if pooling.normalize {
            modules.append(.object(["idx": .number(2), "name": .string("2"), "path": .string("2_Normalize"),
                                    "type": .string("sentence_transformers.models.Normalize")]))
        }
        let poolingConfig: JSONValue = .object([
            "word_embedding_dimension": .number(Double(hidden)),
            "pooling_mode_cls_token": .bool(pooling.mode == .cls),
            "pooling_mode_mean_tokens": .bool(pooling.mode == .mean),
            "pooling_mode_max_tokens": .bool(pooling.mode == .max),
            "pooling_mode_mean_sqrt_len_tokens": .bool(false),
        ])
        var out = [(path: "modules.json", data: try JSONValue.array(modules).prettyJSON() + Data("\n".utf8)),
                   (path: "1_Pooling/config.json", data: try poolingConfig.prettyJSON() + Data("\n".utf8))]
        if let m = pooling.maxTokens {
            let sbert: JSONValue = .object(["max_seq_length": .number(Double(m)), "do_lower_case": .bool(false)])
            out.append((path: "sentence_bert_config.json", data: try sbert.prettyJSON() + Data("\n".utf8)))
        }
        return out
    }
}
