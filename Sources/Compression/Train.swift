import Checkpoint
import EdgeFormat
import EdgeRuntime
import Foundation
import Training

/// Trains every tensor of a model on text with the next-token cross-entropy (no teacher) and
/// writes the result as a float32 `.edge` file: how the tiny test fixtures get weights that mean
/// something, and the training-throughput benchmark (`compress train`).
public enum TrainModelFile {
    /// What a run produced.
    public struct Summary {
        public var output: String
        public var report: TrainReport
        public var seconds: Double
    }

    /// - Parameters:
    ///   - input: any checkpoint `Checkpoint.open` reads (its weights are the starting point).
    ///   - output: the `.edge` file to write (atomically, only on success).
    ///   - textFile: training text; its tail is held out for perplexity.
    ///   - checkpointDir: resume from / save checkpoints there.
    ///   - shouldStop: ends the run early after the current step (a checkpoint is saved; no output is written).
    /// - Throws: checkpoint, tokenizer, training and writing errors.
    public static func run(input: String, output: String, textFile: String, options: TrainOptions, checkpointDir: String? = nil,
                           progress: ((TrainProgress) -> Void)? = nil, shouldStop: (() -> Bool)? = nil) throws -> Summary {
        let start = Date()
        let checkpoint = try Checkpoint.open(input)
        let graph = ModelGraph(checkpoint)
        // An encoder has no next token to train on (it trains by distillation: the distill pass).
        guard !graph.config.isEncoder else { throw TrainingError.unsupportedArchitecture(graph.config.architecture.rawValue) }
        let text = try TextFile.load(path: textFile, purpose: "training text")
        let runtime = try EdgeModel.floatModel(graph: graph)
        let tokens = try runtime.tokenize(text)
        var values: [String: [Float]] = [:]
        for t in graph.tensors { values[t.name] = try t.floats() }
        let model = try TrainModel<Float>(config: graph.config, tensors: values, trainable: Set(values.keys), threads: runtime.threads)
        values = [:]
        model.bf16Matmul = options.matmul == .bf16
        let trainer: Trainer
        do {
            trainer = try Trainer(model: model, tokens: tokens, options: options, teacher: nil)
        } catch let e as TrainingError {
            throw TextFileError.tooShort(path: textFile, purpose: "training text", why: "\(e)")
        }
        var fingerprint = SHA256()
        let sourceSHA = checkpoint.sourceSHA256()
        fingerprint.update(Array((sourceSHA + "|train|").utf8))
        fingerprint.update(Array(text.utf8))
        let report = try trainer.run(checkpointDir: checkpointDir, fingerprint: fingerprint.hexDigest(), progress: progress,
                                     shouldStop: shouldStop)
        if report.steps < options.steps { return Summary(output: output, report: report, seconds: Date().timeIntervalSince(start)) }

        let optionsJSON = try JSONValue(encoding: options)
        var record: [String: JSONValue] = ["pass": .string("train"), "text": .string(URL(fileURLWithPath: textFile).lastPathComponent)]
        record["tokens"] = .number(Double(tokens.count))
        record["steps"] = .number(Double(report.steps))
        record["length"] = .number(Double(report.length))
        record["held_out_ppl_before"] = .number(report.heldOutBefore)
        record["held_out_ppl_after"] = .number(report.heldOutAfter)
        let writer = try ModelWriter(output: output, graph: graph, input: input, sourceSHA256: sourceSHA, config: graph.config,
                                     recipe: .object(["name": .string("train"), "train": optionsJSON]), deflate: false)
        for p in model.params { try writer.add(WorkTensor(name: p.name, shape: p.shape, values: p.value.array)) }
        try writer.finish(passes: [.object(record)])
        return Summary(output: output, report: report, seconds: Date().timeIntervalSince(start))
    }
}
