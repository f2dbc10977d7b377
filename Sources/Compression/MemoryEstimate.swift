import EdgeFormat
import Foundation

/// How much memory a recipe will need on a model, estimated before any work starts from the
/// model's sizes and the recipe's passes, so that `compress --max-memory` can refuse a run that
/// cannot fit in one line instead of failing (or swapping) an hour in.
///
/// The estimate is the largest of the run's phases, each the sum of what that phase holds at once:
/// - **stream** (every recipe): the largest tensor as f32 values, its one-byte codes and its
///   encoded payload (the input's pages are released as they are read, `Safetensors.floats`);
/// - **calibration** (calibration-driven passes): the calibration hidden states, one block's
///   float and compressed weights and its Hessians (layer by layer), or, calibrated once over the
///   float model, the model in f32 and every layer's Hessians; GPTQ on the largest tensor (a tied
///   head) holds its values, working copy, codes and dequantized copies;
/// - **distill**: the teacher in f32, the student's values, gradients, fake-quantized weights and
///   AdamW moments (16 bytes per trained weight with bf16 moments), the fake-quantized weights kept
///   encoded, the masks, and one window's activations and logits (the pruned model the pipeline
///   holds moves into the student, it is not copied);
/// - **blockwise** (the distill pass's block-wise stage): the float model in f32 (the teacher is
///   made only after it), the student in f32 with its gradients, one block's moments, and four
///   sets of hidden states (the student's, the float model's, one block's targets, and the previous
///   block's outputs that the buffer pool keeps for reuse) for every calibration token it uses.
/// Measured against `/usr/bin/time -v` on SmolLM2-135M in docs/performance.md; it is meant to be
/// within about 25% and rather above than below.
public struct MemoryEstimate: Sendable, Equatable {
    /// Peak bytes of the costliest phase.
    public var bytes: Int
    /// That phase: "stream", "calibration", "distill" or "blockwise".
    public var phase: String
    /// What dominates it, for the message.
    public var detail: String
    /// Every phase the recipe runs, with its estimate (bytes, the fixed cost included).
    public var phases: [String: Int] = [:]

    /// Fixed cost: the binary, the runtime, tokenizer and buffers.
    static let base = 48 << 20

    /// "1.3 GB", "214 MB".
    public static func format(_ bytes: Int) -> String {
        let mb = Double(bytes) / 1e6
        return mb >= 1000 ? String(format: "%.1f GB", mb / 1000) : String(format: "%.0f MB", mb)
    }

    /// Parses "2G", "1500M", "3GB", "512MiB", "2e9" (bytes without a suffix); nil when malformed.
    public static func parseSize(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("GIB", 1_073_741_824), ("MIB", 1_048_576), ("KIB", 1024), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3),
                                         ("G", 1e9), ("M", 1e6), ("K", 1e3), ("B", 1)]
        var number = t, scale = 1.0
        for (u, f) in units where t.hasSuffix(u) {
            number = String(t.dropLast(u.count))
            scale = f
            break
        }
        guard let v = Double(number), v.isFinite, v > 0, v * scale < 1e18 else { return nil }
        return Int(v * scale)
    }
}

extension Pipeline {
    /// The memory this recipe needs on `graph` (see `MemoryEstimate`).
    public func memoryEstimate(graph: ModelGraph) throws -> MemoryEstimate {
        let config = graph.config
        let plan = try self.plan(for: graph)
        let passes = recipe.passes
        let P = graph.tensors.reduce(0) { $0 + $1.count }
        guard let largestIndex = graph.tensors.indices.max(by: { graph.tensors[$0].count < graph.tensors[$1].count }) else {
            return MemoryEstimate(bytes: MemoryEstimate.base, phase: "stream", detail: "an empty model")
        }
        let largest = graph.tensors[largestIndex]
        let L = largest.count

        // Stream: values (4 bytes) + codes (1) + the payload in its output encoding.
        var outBytes = 4.0
        var gptqOnLargest = false
        for i in plan[largestIndex] {
            if let q = passes[i] as? Quantize {
                outBytes = Double(q.bits) / 8
                gptqOnLargest = q.method == .gptq && (TensorName.kind(of: largest.name) != .embedding || q.tiedAsHead)
            } else if let c = passes[i] as? Cast {
                outBytes = c.dtype == .f16 ? 2 : 4
            }
        }
        let stream = Int(Double(L) * (5 + outBytes))
        var best = MemoryEstimate(bytes: MemoryEstimate.base + stream, phase: "stream",
                                  detail: "the largest tensor '\(largest.name)' (\(L) weights) as f32 values, codes and payload")
        var phases = ["stream": MemoryEstimate.base + stream]

        // Calibration.
        let needsCalibration = passes.contains { !$0.calibrationNeeds.isEmpty || !$0.prepareCalibrationNeeds.isEmpty }
        if needsCalibration {
            let h = config.hiddenSize, T = recipe.calibration.tokens
            var blockWeights = 0, blockHessians = 0
            for layer in 0 ..< config.numLayers {
                let s = config.sizes(layer: layer)
                let q = s.numHeads * config.headDim, kv = s.numKVHeads * config.headDim, f = s.intermediateSize
                let weights = h * (q + 2 * kv) + q * h + (config.architecture == .llama ? 3 : 2) * h * f
                blockWeights = max(blockWeights, weights)
                // Sites: Q/K/V (h inputs), attention output (q), gate/up (h), down (f); Double accumulators.
                blockHessians = max(blockHessians, 8 * (2 * h * h + q * q + f * f))
            }
            // `calibrationNeeds` are gathered layer by layer over the compressed model; those of
            // `prepareCalibrationNeeds` once over the float model.
            let sequential = passes.contains { !$0.calibrationNeeds.isEmpty }
            let oneShot = passes.contains { !$0.prepareCalibrationNeeds.isEmpty }
            var calib = 0
            // Layer by layer: the token embedding in f32 (to embed the text), the hidden states, one
            // block's float and compressed weights, its Hessians, and the stream.
            if sequential { calib = 4 * L + 8 * T * h + 8 * blockWeights + blockHessians + stream }
            if oneShot { calib = max(calib, 4 * T * h + 4 * P + config.numLayers * blockHessians) }
            // GPTQ on the largest tensor (a tied head fitted as head): the values, the working copy,
            // float codes, dequantized values and the statistics gathered over the whole model
            // (measured: 0.84 GB peak for SmolLM2's 28 M-weight head, about 28 bytes per weight).
            var detail = oneShot ? "the float model and every layer's Hessians" : "\(T) calibration tokens' hidden states, one block's weights and Hessians"
            if gptqOnLargest, 28 * L + 8 * h * h > calib {
                calib = 28 * L + 8 * h * h
                detail = "GPTQ on '\(largest.name)' (\(L) weights)"
            }
            calib = max(calib, stream)
            phases["calibration"] = MemoryEstimate.base + calib
            if MemoryEstimate.base + calib > best.bytes {
                best = MemoryEstimate(bytes: MemoryEstimate.base + calib, phase: "calibration", detail: detail)
            }
        }

        // Distillation.
        if let d = passes.compactMap({ $0 as? Distill }).first {
            let trainable = graph.tensors.filter { d.selector.selects($0.name, numLayers: config.numLayers) }.reduce(0) { $0 + $1.count }
            let len = min(d.options.length, config.maxPositions)
            var perToken = 0
            for layer in 0 ..< config.numLayers {
                let s = config.sizes(layer: layer)
                // Saved for the backward pass, per token and layer: norms, Q/K/V, attention rows, MLP.
                perToken += 10 * config.hiddenSize + 6 * s.intermediateSize + s.numHeads * len
            }
            let window = 4 * len * (perToken + 4 * config.vocabSize)
            // Teacher: matrices in f16, vectors in f32. Student: values and gradients in f32, AdamW m
            // and v in their precision, fake-quantized weights kept encoded (about a byte per weight
            // for int8; f32 when not quantized: none kept) and the largest decoded at once, masks one bit.
            var teacher = 0, quantized = 0
            for t in graph.tensors { teacher += t.shape.count == 2 ? 2 * t.count : 4 * t.count }
            for (n, t) in graph.tensors.enumerated() where plan[n].contains(where: { passes[$0] is Quantize }) { quantized += t.count }
            let momentBytes = d.options.moments == .bf16 ? 4 : 8
            let distill = teacher + (8 + momentBytes) * trainable + quantized + 2 * 4 * L + trainable / 8 + window
            if d.options.steps > 0 { phases["distill"] = MemoryEstimate.base + distill }
            if d.options.steps > 0, MemoryEstimate.base + distill > best.bytes {
                best = MemoryEstimate(bytes: MemoryEstimate.base + distill, phase: "distill",
                                      detail: "the teacher, the student with gradients and AdamW state (\(trainable) trained weights), one \(len)-token window")
            }
            if d.blockwise.epochs > 0 {
                // The block-wise stage: the float model in f32 (not the teacher: it is made after), the whole student in
                // f32 with the trained weights' gradients, one block's f32 moments, the student's and the
                // float model's hidden states and one block's targets for every calibration token (and
                // the previous block's, back in the buffer pool), and one block's activations for a
                // batch of windows.
                let all = graph.tensors.reduce(0) { $0 + $1.count }
                let block = trainable / max(1, config.numLayers)
                let tokens = min(d.blockwise.tokens, 1 << 24)
                let blockwise = 4 * all + 4 * all + 4 * trainable + 8 * block + quantized + trainable / 8
                    + 4 * 4 * tokens * config.hiddenSize + 4 * d.options.batch * len * perToken / max(1, config.numLayers)
                phases["blockwise"] = MemoryEstimate.base + blockwise
                if MemoryEstimate.base + blockwise > best.bytes {
                    best = MemoryEstimate(bytes: MemoryEstimate.base + blockwise, phase: "blockwise",
                                          detail: "the float model in f32, the student with gradients, every calibration token's hidden states")
                }
            }
        }
        best.phases = phases
        return best
    }
}

/// A recipe that needs more memory than `--max-memory` allows, refused before any work.
public struct MemoryBudgetError: Error, CustomStringConvertible {
    public let recipe: String
    public let estimate: MemoryEstimate
    public let limit: Int
    public var description: String {
        "recipe \(recipe) needs about \(MemoryEstimate.format(estimate.bytes)) (\(estimate.phase): \(estimate.detail)); --max-memory is \(MemoryEstimate.format(limit))"
    }
}
