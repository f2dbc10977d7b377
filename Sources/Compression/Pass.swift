import EdgeFormat
import Foundation

/// Where a recipe lists a pass: a recipe must list passes in non-decreasing stage order
/// (prune, then quantize/cast, then distill, then pack). This is how a recipe *reads*; the order
/// the data flows through the passes is `PassPhase` (see `Pipeline`).
public enum PassStage: Int, Comparable, Sendable {
    case prune = 0, quantize = 1, distill = 2, pack = 3
    public static func < (a: PassStage, b: PassStage) -> Bool { a.rawValue < b.rawValue }
}

/// Where a pass's work sits in the data flow, whatever its place in the recipe. The pipeline
/// prepares passes and runs each tensor through them in phase order (recipe order within a phase):
///
/// ```
/// shape (prune: zeros, smaller tensors) -> rewrite (replace values: distill) -> encode (quantize, cast) -> layout (pack)
/// ```
///
/// So a recipe `prune, quantize, distill, pack` runs `prune -> distill -> quantize -> pack`: the
/// rewrite pass trains through the encode passes (see `PassNeeds.encoders`) and hands them its values.
public enum PassPhase: Int, Comparable, Sendable, CaseIterable {
    /// Sets weights to zero or removes rows/columns (and changes the config).
    case shape = 0
    /// Replaces values wholesale, e.g. with values trained over the whole model.
    case rewrite = 1
    /// Fixes the stored value encoding (int8/int4, f16).
    case encode = 2
    /// Chooses the stored layout (dense, sparse, N:M) of what is already encoded.
    case layout = 3
    public static func < (a: PassPhase, b: PassPhase) -> Bool { a.rawValue < b.rawValue }
}

/// What a pass needs from the pipeline beyond the tensors it selects and its calibration
/// statistics (`Pass.calibrationNeeds`). The pipeline provides exactly what is declared, in
/// the `PassContext` its `prepare` sees, and refuses a run that cannot provide it.
public struct PassNeeds: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The calibration text itself (`context.calibrationText`), e.g. to train on it.
    public static let calibrationText = PassNeeds(rawValue: 1)
    /// The model as it entered the pipeline, in float (`context.input`), e.g. as a teacher.
    public static let inputModel = PassNeeds(rawValue: 2)
    /// Per tensor, what the later encode-phase passes would make of given values
    /// (`context.encoders`), e.g. to train through quantization; with it, `context.masked` names
    /// the tensors a shape-phase pass changed (their zeros are masks to keep).
    public static let encoders = PassNeeds(rawValue: 4)
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

/// What a pass may need beyond the tensor: the model config and what it declared in `needs` and
/// `calibrationNeeds`.
public struct PassContext {
    /// The config as this pass sees it: after the `transform(config:)` of every pass before it in the data flow.
    public let config: ModelConfig
    /// Index of this pass in the recipe (for messages: `passes[i]`).
    public let index: Int
    /// The recipe file (for messages).
    public let recipeFile: String
    /// Statistics of the float model's activations over the calibration text (`--data`), when a
    /// pass of the recipe asked for them (`calibrationNeeds`).
    public var calibration: CalibrationStats? = nil
    /// The calibration text (`PassNeeds.calibrationText`): `--data`, or the bundled set.
    public var calibrationText: CalibrationText? = nil
    /// The model as it entered the pipeline (`PassNeeds.inputModel`).
    public var input: ModelGraph? = nil
    /// By tensor name, the encode-phase passes that select it, as one function from values to the
    /// values they would store and their encoding, when they encode it (run on copies, so the real
    /// passes' records are untouched)
    /// (`PassNeeds.encoders`).
    public var encoders: [String: ([Float]) throws -> (values: [Float], encoded: EncodedTensor?)] = [:]
    /// By tensor name, for the tensors a later encode-phase pass cannot re-fit at every training
    /// step (`Pass.refusesTrainingThrough`, e.g. GPTQ): fits that pass's encoding once (`Pass.fit`)
    /// on the given values and the Hessian (2/n) X^T X of the tensor's inputs, and returns the values
    /// it would store; from then on `encoders` (and the pass itself) round the tensor's values on
    /// the grids so fitted (`PassNeeds.encoders`).
    public var fitters: [String: (_ values: [Float], _ hessian: [Double]) throws -> [Float]] = [:]
    /// The model as the passes before this one left it, held in memory by the pipeline (after
    /// layer-by-layer calibration), offered to the first pass prepared over it: a pass that reads
    /// the whole model in `prepare` may take tensors' values out of it instead of copying them
    /// (`LatentModel.take`) and must give back what the stream is to read for each (`give`).
    public var latent: LatentModel? = nil
    /// Tensors a shape-phase pass before this one changed (`PassNeeds.encoders`).
    public var masked: Set<String> = []
    /// Folder for training checkpoints (`--checkpoint-dir`), when given.
    public var checkpointDir: String? = nil
    /// Identifies the run (input, recipe, calibration text) for checkpoints.
    public var fingerprint: String = ""
    /// What passes fitted once for training in this run (`Pass.fit`), for their later `apply` calls
    /// (the training's copies and the pass itself) to reuse; one object per pipeline run, shared by
    /// every context of the run.
    public var fitted = FittedEncodings()
    /// Progress of long passes: (done, total, what).
    public var progress: ((Int, Int, String) -> Void)? = nil

    /// A context with only the config (what `apply` needs for most passes; tests).
    public init(config: ModelConfig, index: Int, recipeFile: String, calibration: CalibrationStats? = nil) {
        self.config = config
        self.index = index
        self.recipeFile = recipeFile
        self.calibration = calibration
    }
}

/// A compression pass: one file each, one recipe stage each. A pass *declares* what it needs and
/// where it runs; the pipeline schedules by those declarations and never by the pass's type:
///
/// - `stage`: where the recipe lists it (validated order); `phase`: where the data flows through it.
/// - `calibrationNeeds` (statistics: column norms, Hessians) and `needs` (the text, the input
///   model, the encoders after it): gathered before `prepare`.
/// - `encodesMatrices`: checked in `Pipeline.plan` (only matrices, never encoded twice).
/// - `prepare` runs once over the whole model (lazily read, as the passes before it leave it; a
///   pass may decide per layer there, or train), `transform(config:)` then changes the config,
///   `apply` runs per selected tensor while the model streams to the file, `record` describes what
///   it did (deterministic: it is written into the file) and `timings` how long it took (reported, not written).
public protocol Pass {
    /// The `"pass"` value in recipes.
    static var id: String { get }
    /// Where a recipe lists it.
    static var stage: PassStage { get }
    /// Where its work sits in the data flow (default: from `stage`: prune -> shape,
    /// quantize -> encode, distill -> rewrite, pack -> layout).
    static var phase: PassPhase { get }
    /// Parses the pass's fields (the caller rejects unknown fields afterwards).
    init(fields: inout RecipeFields) throws
    /// Which tensors it touches.
    var selector: TensorSelector { get }
    /// What it needs to know in `apply` about the activations of the tensors it selects (default:
    /// nothing); a recipe with such a pass needs calibration text.
    var calibrationNeeds: CalibrationNeeds { get }
    /// What it needs to know in `prepare`, for whole-model decisions (e.g. ranking units to remove,
    /// spreading sparsity over layers) (default: nothing). These statistics come from one run of the
    /// float input model (`context.calibration` in `prepare`); those of `calibrationNeeds` are read in
    /// `apply` and come layer by layer from the model as compressed so far (`SequentialCalibration`).
    var prepareCalibrationNeeds: CalibrationNeeds { get }
    /// Whether `prepare` reads tensor values (e.g. a global threshold, training); a pass after a
    /// sequentially calibrated one that does sees that pass's result in memory. Default: false.
    var readsWeightsInPrepare: Bool { get }
    /// What else it needs from the pipeline (default: nothing).
    var needs: PassNeeds { get }
    /// Whether it fixes the encoding of every tensor it selects, which then must be a matrix that
    /// no other such pass encodes (default: false).
    var encodesMatrices: Bool { get }
    /// Why a pass that trains through the encoders (`PassNeeds.encoders`) cannot follow this one,
    /// e.g. because running it every step is too slow; nil (the default) when it can.
    var refusesTrainingThrough: String? { get }
    /// Whether it trains through such passes anyway by having their encodings fitted once per
    /// block, before the block trains (`PassContext.fitters`; the distill pass's block-wise stage).
    /// Default: false.
    var fitsEncodersPerBlock: Bool { get }
    /// Whole-model work before any tensor is transformed (default: none). Reads tensors lazily.
    mutating func prepare(graph: ModelGraph, context: PassContext) throws
    /// Changes the model config after `prepare` and before any tensor is written (default: none),
    /// e.g. the per-layer sizes after structured pruning. Tensors this pass shrinks in `apply`
    /// must then have the shapes `config.expectedTensors()` gives.
    mutating func transform(config: inout ModelConfig) throws
    /// Transforms one selected tensor.
    mutating func apply(_ tensor: inout WorkTensor, context: PassContext) throws
    /// `apply` with the Hessian (2/n) X^T X of the tensor's inputs given instead of read from the
    /// calibration statistics, for a pass that refuses training through it (`refusesTrainingThrough`):
    /// it fixes the tensor's encoding so that later `apply` calls round on it (see
    /// `PassContext.fitters`). Default: `apply`.
    mutating func fit(_ tensor: inout WorkTensor, hessian: [Double], context: PassContext) throws
    /// What the pass did, recorded in the output's provenance: the same for the same input and recipe.
    func record() -> JSONValue
    /// How long its work took and how fast (default: nothing): reported by `compress`, never
    /// written into the file (which must not change from run to run).
    func timings() -> JSONValue?
}

extension Pass {
    public static var phase: PassPhase {
        switch stage {
        case .prune: return .shape
        case .quantize: return .encode
        case .distill: return .rewrite
        case .pack: return .layout
        }
    }
    public mutating func prepare(graph: ModelGraph, context: PassContext) throws {}
    public mutating func transform(config: inout ModelConfig) throws {}
    public var calibrationNeeds: CalibrationNeeds { [] }
    public var needs: PassNeeds { [] }
    public var prepareCalibrationNeeds: CalibrationNeeds { [] }
    public var readsWeightsInPrepare: Bool { false }
    public var encodesMatrices: Bool { false }
    public var refusesTrainingThrough: String? { nil }
    public var fitsEncodersPerBlock: Bool { false }
    public mutating func fit(_ tensor: inout WorkTensor, hessian: [Double], context: PassContext) throws {
        try apply(&tensor, context: context)
    }
    public func timings() -> JSONValue? { nil }
    /// Whether the pass needs the calibration text (for statistics or itself).
    public var needsCalibrationText: Bool {
        !calibrationNeeds.isEmpty || !prepareCalibrationNeeds.isEmpty || needs.contains(.calibrationText)
    }
}

/// A pass failed on a tensor (e.g. a value its encoding cannot represent).
public struct PassError: Error, CustomStringConvertible {
    public let pass: String
    public let tensor: String
    public let why: String
    public var description: String { "pass '\(pass)': tensor '\(tensor)': \(why)" }
}

/// Tensor values held in memory by the pipeline between two stages (see `PassContext.latent`).
/// A pass may move a tensor's values out (`take`) and back (`give`); reading a tensor that was
/// taken and not given back is an error naming it. Thread-safe.
public final class LatentModel: @unchecked Sendable {
    private var store: [String: [Float]] = [:]
    private let lock = NSLock()

    public init() {}

    /// Holds `values` for `name` (replacing what was held).
    public func give(_ name: String, _ values: [Float]) {
        lock.lock()
        store[name] = values
        lock.unlock()
    }

    /// The values of `name`, no longer held here; nil when none are.
    public func take(_ name: String) -> [Float]? {
        lock.lock()
        defer { lock.unlock() }
        return store.removeValue(forKey: name)
    }

    /// A copy of the values of `name`.
    /// - Throws: `PassError` when they were taken and not given back.
    public func values(_ name: String) throws -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        guard let v = store[name] else {
            throw PassError(pass: "pipeline", tensor: name, why: "was taken from the in-memory model by a pass and not given back")
        }
        return v
    }
}

/// Per pipeline run: what passes fitted once for training (`Pass.fit`, e.g. GPTQ's grids), by pass
/// (recipe index) and tensor name. Thread-safe.
public final class FittedEncodings: @unchecked Sendable {
    private var entries: [String: Any] = [:]
    private let lock = NSLock()

    public init() {}

    public func value(pass: Int, tensor: String) -> Any? {
        lock.lock()
        defer { lock.unlock() }
        return entries["\(pass)/\(tensor)"]
    }

    public func set(_ value: Any, pass: Int, tensor: String) {
        lock.lock()
        entries["\(pass)/\(tensor)"] = value
        lock.unlock()
    }
}
