import EdgeFormat
import Foundation

/// Where a pass sits in a pipeline; a recipe must list passes in non-decreasing stage order.
public enum PassStage: Int, Comparable, Sendable {
    case prune = 0, quantize = 1, distill = 2, pack = 3
    public static func < (a: PassStage, b: PassStage) -> Bool { a.rawValue < b.rawValue }
}

/// One tensor flowing through the pipeline. Passes see float values (after quantization, the
/// dequantized values) and may set the final encoding.
public struct WorkTensor {
    public let name: String
    /// Current shape; a pass that physically shrinks a tensor (structured pruning) updates it
    /// together with `values`.
    public var shape: [Int]
    /// Current values, row-major [out, in].
    public var values: [Float]
    /// Set once a pass has fixed the stored encoding (quantize, cast). Nil means f32.
    public var encoded: EncodedTensor?
    /// Which recipe pass encoded it (for error messages).
    public var encodedBy: Int?

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }

    public var rows: Int { shape.count == 2 ? shape[0] : 1 }
    public var cols: Int { shape.count == 2 ? shape[1] : shape.reduce(1, *) }

    /// Fraction of values that are exactly zero.
    public var sparsity: Double {
        guard !values.isEmpty else { return 0 }
        var zeros = 0
        for v in values where v == 0 { zeros += 1 }
        return Double(zeros) / Double(values.count)
    }
}

/// What a pass may need beyond the tensor: the model config and, for statistics, the whole graph.
public struct PassContext {
    /// The config as this pass sees it: after the `transform(config:)` of every earlier pass.
    public let config: ModelConfig
    /// Index of this pass in the recipe (for messages: `passes[i]`).
    public let index: Int
    /// The recipe file (for messages).
    public let recipeFile: String
    /// Statistics of the float model's activations over the calibration text (`--data`), when a
    /// pass of the recipe asked for them (`calibrationNeeds`).
    public var calibration: CalibrationStats? = nil
    /// Folder for training checkpoints (`--checkpoint-dir`), when given.
    public var checkpointDir: String? = nil
    /// Identifies the run (input, recipe, calibration text) for checkpoints.
    public var fingerprint: String = ""
    /// Progress of long passes: (done, total, what).
    public var progress: ((Int, Int, String) -> Void)? = nil
}

/// A compression pass: one file each, one recipe stage each. Parsed from its recipe object,
/// it may gather global statistics in `prepare`, then transforms selected tensors one at a time
/// in `apply` (so the pipeline streams the model), and finally describes what it did.
public protocol Pass {
    /// The `"pass"` value in recipes.
    static var id: String { get }
    static var stage: PassStage { get }
    /// Parses the pass's fields (the caller rejects unknown fields afterwards).
    init(fields: inout RecipeFields) throws
    /// Which tensors it touches.
    var selector: TensorSelector { get }
    /// What it needs to know about the activations of the tensors it selects (default: nothing);
    /// a recipe with such a pass needs calibration text.
    var calibrationNeeds: CalibrationNeeds { get }
    /// Whether the pass needs the calibration text itself (default: when it needs statistics).
    var needsCalibrationText: Bool { get }
    /// Whole-model statistics before any tensor is transformed (default: none). Reads tensors lazily.
    mutating func prepare(graph: ModelGraph, context: PassContext) throws
    /// Changes the model config after `prepare` and before any tensor is written (default: none),
    /// e.g. the per-layer sizes after structured pruning. Tensors this pass shrinks in `apply`
    /// must then have the shapes `config.expectedTensors()` gives.
    mutating func transform(config: inout ModelConfig) throws
    /// Transforms one selected tensor.
    mutating func apply(_ tensor: inout WorkTensor, context: PassContext) throws
    /// What the pass did, recorded in the output's provenance.
    func record() -> JSONValue
}

extension Pass {
    public mutating func prepare(graph: ModelGraph, context: PassContext) throws {}
    public mutating func transform(config: inout ModelConfig) throws {}
    public var calibrationNeeds: CalibrationNeeds { [] }
    public var needsCalibrationText: Bool { !calibrationNeeds.isEmpty }
}

/// A pass failed on a tensor (e.g. a value its encoding cannot represent).
public struct PassError: Error, CustomStringConvertible {
    public let pass: String
    public let tensor: String
    public let why: String
    public var description: String { "pass '\(pass)': tensor '\(tensor)': \(why)" }
}
