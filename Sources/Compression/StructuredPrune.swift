import Checkpoint
import EdgeFormat
import Foundation

/// Structured pruning: removes whole MLP neurons and whole attention heads from each selected
/// layer and physically shrinks the tensors; the output config records the new per-layer sizes
/// (`ModelConfig.layers`).
///
/// Heads go by KV group, so grouped-query attention stays consistent: a group is one KV head with
/// the `num_heads / num_kv_heads` query heads that read it (GPT-2: one head). Each layer loses
/// `round(heads * num_kv_heads)` groups (halves up, at most all but one) and
/// `round(mlp * intermediate_size)` neurons (at most all but one), those with the smallest score.
/// Ranking `l2`: the Euclidean norm of everything the unit owns, i.e. for a neuron its `ffn_gate`
/// and `ffn_up` rows, `ffn_up.bias` entry and `ffn_down` column; for a group its query heads'
/// `attn_q` rows and `attn_output` columns, its `attn_k` / `attn_v` rows, and their bias entries.
/// Ranking `activation` (needs `--data`): what the unit contributes to the layer's output over the
/// calibration text, sum over its output-projection columns c of ||X_c||^2 * ||W[:, c]||^2 (`ffn_down`
/// for a neuron, `attn_output` for a group; X_c the projection's input c), as Wanda scores weights.
/// Ties remove the lower index first.
///
/// Shrinks: `ffn_gate` / `ffn_up` rows and `ffn_up.bias` entries, `ffn_down` columns; `attn_q` rows
/// (and bias) of removed query heads, `attn_k` / `attn_v` rows (and biases) of removed KV heads,
/// `attn_output` columns. Output biases and norms keep their size.
///
/// Recipe: `{"pass": "structured_prune", "mlp": 0.25, "heads": 0.25, "ranking": "l2" | "activation", <selector>}`.
/// The selector (default `kinds: ["linear"]`) chooses layers: a layer's MLP is pruned when it
/// selects all of that layer's MLP weights, its attention when it selects all of `attn_q`, `attn_k`,
/// `attn_v` and `attn_output`; selecting only some of them is an error.
public struct StructuredPrune: Pass {
    public static let id = "structured_prune"
    public static let stage = PassStage.prune

    /// How units are scored before the lowest are removed.
    public enum Ranking: String, Sendable, CaseIterable {
        /// The Euclidean norm of the unit's weights.
        case l2
        /// What the unit adds to its layer's output over the calibration text: for a neuron
        /// ||X_i||^2 * ||ffn_down[:, i]||^2, for a group the sum of that over its `attn_output`
        /// columns, with ||X_c|| the norm of the projection's input c (needs `--data`).
        case activation
    }

    /// Fraction of intermediate neurons removed per layer, 0 <= mlp < 1.
    public let mlp: Double
    /// Fraction of attention heads removed per layer (rounded to whole KV groups), 0 <= heads < 1.
    public let heads: Double
    public let ranking: Ranking
    /// The recipe's selector: which layers' MLPs and attentions are pruned (see the type's comment).
    public let choice: TensorSelector

    /// What `prepare` decided for one layer.
    struct LayerPlan {
        /// Sizes before this pass.
        var before: ModelConfig.LayerSizes
        /// Kept KV groups, ascending; nil when the attention is untouched.
        var keptGroups: [Int]?
        /// Kept intermediate neurons, ascending; nil when the MLP is untouched.
        var keptNeurons: [Int]?

        var after: ModelConfig.LayerSizes {
            let groupSize = before.numHeads / before.numKVHeads
            let kv = keptGroups?.count ?? before.numKVHeads
            return ModelConfig.LayerSizes(numHeads: kv * groupSize, numKVHeads: kv,
                                          intermediateSize: keptNeurons?.count ?? before.intermediateSize)
        }
    }

    private var plans: [Int: LayerPlan] = [:]
    private var headDim = 0
    private var weightsBefore = 0
    private var weightsAfter = 0

    public init(mlp: Double, heads: Double, ranking: Ranking = .l2, selector: TensorSelector = TensorSelector(kinds: [.linear])) {
        self.mlp = mlp
        self.heads = heads
        self.ranking = ranking
        self.choice = selector
    }

    public init(fields f: inout RecipeFields) throws {
        mlp = try f.double("mlp", default: 0, range: 0 ... 1, openUpper: true)
        heads = try f.double("heads", default: 0, range: 0 ... 1, openUpper: true)
        guard mlp > 0 || heads > 0 else {
            throw f.error("mlp", "and 'heads' are both 0 (or missing): the pass would remove nothing; give a fraction > 0")
        }
        ranking = try f.choice("ranking", default: Ranking.l2)
        choice = try f.selector(defaultKinds: [.linear])
    }

    /// The units are ranked over the whole model in `prepare`.
    public var prepareCalibrationNeeds: CalibrationNeeds { ranking == .activation ? .columnNorms : [] }
    public var readsWeightsInPrepare: Bool { true }

    /// Every block weight and bias: `apply` shrinks those of the layers `prepare` chose and leaves
    /// the rest alone (biases must follow their weights, whatever `kinds` the recipe names).
    public var selector: TensorSelector { TensorSelector(kinds: [.linear, .bias], include: [TensorID.anyBlockTensorPattern]) }

    public mutating func prepare(graph: ModelGraph, context: PassContext) throws {
        let config = graph.config
        headDim = config.headDim
        plans = [:]
        var byName: [String: SourceTensor] = [:]
        for t in graph.tensors { byName[t.name] = t }
        let schema = config.schema()
        for l in 0 ..< config.numLayers {
            let s = config.sizes(layer: l)
            var plan = LayerPlan(before: s)
            func id(_ role: TensorRole, bias: Bool = false) -> TensorID { TensorID(layer: l, role, bias: bias) }
            func weights(_ roles: [TensorRole]) -> [String] { roles.map { id($0).name } }
            func values(_ id: TensorID, rows: Int) throws -> (values: [Float], cols: Int) {
                let name = id.name
                guard let t = byName[name] else { throw PassError(pass: Self.id, tensor: name, why: "is missing from the model") }
                let v = try t.floats()
                let cols = t.shape.count == 2 ? t.shape[1] : 1
                guard t.shape.count <= 2, t.shape.first == rows, v.count == rows * cols else {
                    throw PassError(pass: Self.id, tensor: name, why: "has shape \(t.shape); layer \(l)'s sizes imply \(rows) rows")
                }
                return (v, cols)
            }
            func rows(_ id: TensorID, count: Int, per: Int, into score: inout [Double]) throws {
                let (v, cols) = try values(id, rows: count * per)
                for r in 0 ..< count * per {
                    var sum = 0.0
                    for x in v[r * cols ..< (r + 1) * cols] { sum += Double(x) * Double(x) }
                    score[r / per] += sum
                }
            }
            func columns(_ id: TensorID, count: Int, per: Int, into score: inout [Double]) throws {
                let rows = byName[id.name]?.shape.first ?? 0
                let (v, cols) = try values(id, rows: rows)
                guard cols == count * per else {
                    throw PassError(pass: Self.id, tensor: id.name, why: "has \(cols) columns; layer \(l)'s sizes imply \(count * per)")
                }
                for r in 0 ..< rows {
                    for c in 0 ..< cols { score[c / per] += Double(v[r * cols + c]) * Double(v[r * cols + c]) }
                }
            }

            /// Activation ranking: sum over rows r of (W[r, c] * ||X_c||)^2, per unit of `per` columns.
            func outputEnergy(_ id: TensorID, count: Int, per: Int, into score: inout [Double]) throws {
                guard let norms = context.calibration?.columnNorms(for: id.name), norms.count == count * per else {
                    throw PassError(pass: Self.id, tensor: id.name, why: "no calibration statistics for its inputs (ranking 'activation' needs --data)")
                }
                var colEnergy = [Double](repeating: 0, count: count * per)
                try columns(id, count: count * per, per: 1, into: &colEnergy)
                for c in 0 ..< count * per { score[c / per] += colEnergy[c] * Double(norms[c]) * Double(norms[c]) }
            }

            // The MLP's matrices as the schema lists them (gate only with SwiGLU).
            let mlpRoles = config.blockRoles.filter { Self.unit(of: $0) == .neuron }
            let f = s.intermediateSize
            let removeNeurons = min(f - 1, Int((mlp * Double(f)).rounded()))
            if removeNeurons > 0, try chosen(weights(mlpRoles), layer: l, config: config, context: context) {
                var score = [Double](repeating: 0, count: f)
                if ranking == .activation {
                    try outputEnergy(id(.ffnDown), count: f, per: 1, into: &score)
                } else {
                    for role in mlpRoles where role != .ffnDown { try rows(id(role), count: f, per: 1, into: &score) }
                    if schema.contains(id(.ffnUp, bias: true)) { try rows(id(.ffnUp, bias: true), count: f, per: 1, into: &score) }
                    try columns(id(.ffnDown), count: f, per: 1, into: &score)
                }
                plan.keptNeurons = Self.keep(score, removing: removeNeurons)
            }

            let groups = s.numKVHeads, groupWidth = s.numHeads / s.numKVHeads * headDim
            let removeGroups = min(groups - 1, Int((heads * Double(groups)).rounded()))
            let attentionRoles = config.blockRoles.filter { Self.unit(of: $0) == .group }  // q, k, v, output
            if removeGroups > 0, try chosen(weights(attentionRoles), layer: l, config: config, context: context) {
                var score = [Double](repeating: 0, count: groups)
                if ranking == .activation {
                    try outputEnergy(id(.attnOutput), count: groups, per: groupWidth, into: &score)
                } else {
                    try rows(id(.attnQ), count: groups, per: groupWidth, into: &score)
                    try rows(id(.attnK), count: groups, per: headDim, into: &score)
                    try rows(id(.attnV), count: groups, per: headDim, into: &score)
                    for (role, per) in [(TensorRole.attnQ, groupWidth), (.attnK, headDim), (.attnV, headDim)]
                    where schema.contains(id(role, bias: true)) {
                        try rows(id(role, bias: true), count: groups, per: per, into: &score)
                    }
                    try columns(id(.attnOutput), count: groups, per: groupWidth, into: &score)
                }
                plan.keptGroups = Self.keep(score, removing: removeGroups)
            }
            if plan.keptGroups != nil || plan.keptNeurons != nil { plans[l] = plan }
        }
    }

    /// Whether the recipe's selector picks all of `names` (true) or none (false); some is an error.
    private func chosen(_ names: [String], layer: Int, config: ModelConfig, context: PassContext) throws -> Bool {
        let picked = names.filter { choice.selects($0, numLayers: config.numLayers) }
        if picked.isEmpty { return false }
        if picked.count == names.count { return true }
        let missing = names.first { !picked.contains($0) }!
        throw RecipeError(file: context.recipeFile, field: "passes[\(context.index)]",
                          why: "selects '\(picked[0])' but not '\(missing)'; structured pruning removes units from all of \(names.joined(separator: ", ")) together (select all or none of them)")
    }

    /// The indices left after removing the `count` lowest scores (ties: lower index removed first), ascending.
    static func keep(_ score: [Double], removing count: Int) -> [Int] {
        let order = score.indices.sorted { score[$0] != score[$1] ? score[$0] < score[$1] : $0 < $1 }
        return order.dropFirst(count).sorted()
    }

    public mutating func transform(config: inout ModelConfig) throws {
        guard !plans.isEmpty else { return }
        let current = config
        config.layers = (0 ..< current.numLayers).map { plans[$0]?.after ?? current.sizes(layer: $0) }
    }

    /// What structured pruning removes from a role's tensors: attention heads (by KV group), MLP neurons, or nothing.
    enum Unit {
        case group, neuron, untouched
    }

    /// The unit a role's tensors are indexed by (rows or columns), `.untouched` for roles it leaves alone.
    static func unit(of role: TensorRole) -> Unit {
        switch role {
        case .attnQ, .attnK, .attnV, .attnOutput: return .group
        case .ffnGate, .ffnUp, .ffnDown: return .neuron
        case .tokenEmbd, .posEmbd, .tokenTypes, .tokenEmbdNorm, .attnNorm, .attnQKV, .attnOutNorm, .ffnNorm,
             .layerOutNorm, .outputNorm, .output, .cls, .clsOut:
            return .untouched
        }
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard let id = TensorID(name: t.name), let l = id.layer, let plan = plans[l] else { return }
        let s = plan.before
        let groupWidth = s.numHeads / s.numKVHeads * headDim
        let before = t.values.count
        switch id.role {
        case .attnQ:  // rows by query head (weight and bias)
            guard let kept = plan.keptGroups else { return }
            try Self.keepRows(&t, kept, of: s.numKVHeads, per: groupWidth)
        case .attnK, .attnV:  // rows by KV head (weight and bias)
            guard let kept = plan.keptGroups else { return }
            try Self.keepRows(&t, kept, of: s.numKVHeads, per: headDim)
        case .attnOutput:  // columns by query head; the bias (h) keeps its size
            guard let kept = plan.keptGroups, !id.isBias else { return }
            try Self.keepColumns(&t, kept, of: s.numKVHeads, per: groupWidth)
        case .ffnGate, .ffnUp:  // rows by neuron (weight and bias)
            guard let kept = plan.keptNeurons else { return }
            try Self.keepRows(&t, kept, of: s.intermediateSize, per: 1)
        case .ffnDown:  // columns by neuron; the bias (h) keeps its size
            guard let kept = plan.keptNeurons, !id.isBias else { return }
            try Self.keepColumns(&t, kept, of: s.intermediateSize, per: 1)
        case .tokenEmbd, .posEmbd, .tokenTypes, .tokenEmbdNorm, .attnNorm, .attnQKV, .attnOutNorm, .ffnNorm,
             .layerOutNorm, .outputNorm, .output, .cls, .clsOut:
            return
        }
        weightsBefore += before
        weightsAfter += t.values.count
    }

    /// Keeps the row blocks `kept` (each `per` rows) of a matrix or vector with `units * per` rows.
    static func keepRows(_ t: inout WorkTensor, _ kept: [Int], of units: Int, per: Int) throws {
        try checkUnencoded(t)
        let rows = t.shape.first ?? 0, cols = t.shape.count == 2 ? t.shape[1] : 1
        guard t.shape.count <= 2, rows == units * per, t.values.count == rows * cols else {
            throw PassError(pass: id, tensor: t.name, why: "has shape \(t.shape); expected \(units * per) rows")
        }
        var out: [Float] = []
        out.reserveCapacity(kept.count * per * cols)
        for u in kept { out += t.values[u * per * cols ..< (u + 1) * per * cols] }
        t.values = out
        t.shape[0] = kept.count * per
    }

    /// Keeps the column blocks `kept` (each `per` columns) of a matrix with `units * per` columns.
    static func keepColumns(_ t: inout WorkTensor, _ kept: [Int], of units: Int, per: Int) throws {
        try checkUnencoded(t)
        guard t.shape.count == 2, t.shape[1] == units * per, t.values.count == t.shape[0] * t.shape[1] else {
            throw PassError(pass: id, tensor: t.name, why: "has shape \(t.shape); expected a matrix with \(units * per) columns")
        }
        let rows = t.shape[0], cols = t.shape[1]
        var out: [Float] = []
        out.reserveCapacity(rows * kept.count * per)
        for r in 0 ..< rows {
            for u in kept { out += t.values[r * cols + u * per ..< r * cols + (u + 1) * per] }
        }
        t.values = out
        t.shape[1] = kept.count * per
    }

    private static func checkUnencoded(_ t: WorkTensor) throws {
        guard t.encoded == nil else {
            throw PassError(pass: id, tensor: t.name, why: "is already encoded; structured pruning must come before quantization")
        }
    }

    public func record() -> JSONValue {
        var removedNeurons = 0, removedHeads = 0, removedGroups = 0
        var layers: [JSONValue] = []
        for l in plans.keys.sorted() {
            let p = plans[l]!, a = p.after
            removedNeurons += p.before.intermediateSize - a.intermediateSize
            removedHeads += p.before.numHeads - a.numHeads
            removedGroups += p.before.numKVHeads - a.numKVHeads
            let removedKV = (0 ..< p.before.numKVHeads).filter { !(p.keptGroups ?? Array(0 ..< p.before.numKVHeads)).contains($0) }
            layers.append(.object([
                "layer": .number(Double(l)), "num_heads": .number(Double(a.numHeads)),
                "num_kv_heads": .number(Double(a.numKVHeads)), "intermediate_size": .number(Double(a.intermediateSize)),
                "removed_kv_heads": .array(removedKV.map { .number(Double($0)) }),
            ]))
        }
        return .object([
            "pass": .string(Self.id), "mlp": .number(mlp), "heads": .number(heads), "ranking": .string(ranking.rawValue),
            "selector": choice.record, "layers": .array(layers),
            "removed_neurons": .number(Double(removedNeurons)), "removed_heads": .number(Double(removedHeads)),
            "removed_kv_heads": .number(Double(removedGroups)),
            "weights_before": .number(Double(weightsBefore)), "weights_after": .number(Double(weightsAfter)),
        ])
    }
}
