import EdgeFormat
import Foundation

/// A recipe field is missing, of the wrong type, out of range or unknown.
public struct RecipeError: Error, CustomStringConvertible {
    public let file: String
    /// Path of the field inside the recipe, e.g. `passes[0].sparsity`.
    public let field: String
    public let why: String
    public var description: String { field.isEmpty ? "\(file): recipe \(why)" : "\(file): recipe field '\(field)' \(why)" }
}

/// Accuracy and size limits that `compress verify` enforces (exit non-zero when exceeded).
public struct Budget: Equatable, Sendable {
    /// Largest allowed relative perplexity increase, e.g. 0.05 for +5%.
    public var maxPPLIncrease: Double?
    /// Largest allowed output size in bytes.
    public var maxBytes: Int?
    /// Smallest allowed mean cosine similarity between float and compressed sentence embeddings (encoders).
    public var minCosine: Double?
    public init(maxPPLIncrease: Double? = nil, maxBytes: Int? = nil, minCosine: Double? = nil) {
        self.maxPPLIncrease = maxPPLIncrease
        self.maxBytes = maxBytes
        self.minCosine = minCosine
    }
}

/// Calibration settings of a recipe (`"calibration": {"tokens": 8192, "ctx": 512}`).
public struct CalibrationOptions: Equatable, Sendable {
    /// Run at most this many tokens of the calibration text.
    public var tokens = 8192
    /// Window length (capped by the model's context).
    public var ctx = 512
    /// Inside a block, calibrate and compress its weights in the order the forward reads them
    /// (Q/K/V, attention output, gate/up, down), each stage's statistics coming from the block with
    /// the earlier stages already compressed (GPTQ's "true sequential"). Off: one set of statistics per
    /// block, from the block as the passes before the calibrated one leave it.
    public var trueSequential = false
    /// Take a decoder's windows spread evenly over the whole text (its kinds of writing) rather than
    /// its first `tokens` tokens (`Calibration.windows`). An encoder reads the first sentences either way.
    public var spread = false
}

/// A compression recipe: an ordered list of passes plus output options. Parsed strictly:
/// unknown fields, wrong types and out-of-range values are errors naming the field.
public struct Recipe {
    public var name: String
    public var description: String?
    public var passes: [any Pass]
    public var budget: Budget?
    /// Deflate tensor payloads in the output (smaller download; the runtime then inflates at load).
    public var deflate: Bool
    /// The recipe exactly as given (normalized JSON), recorded in the output's provenance.
    public var json: JSONValue
    /// How much calibration text to run, for passes that need activation statistics.
    public var calibration: CalibrationOptions

    /// The passes this package defines, in the order `known:` lists them in errors.
    public static let standardPasses: [any Pass.Type] = [
        MagnitudePrune.self, WandaPrune.self, SparseGPTPrune.self, ADMMPrune.self, StructuredPrune.self, Quantize.self, Cast.self, Distill.self, Pack.self,
    ]

    /// All pass types a recipe may name, by their `"pass"` value: `standardPasses` plus `extra`
    /// (which may not reuse a standard id).
    public static func passTypes(adding extra: [any Pass.Type] = []) -> [String: any Pass.Type] {
        var types: [String: any Pass.Type] = [:]
        for t in standardPasses + extra {
            precondition(types[t.id] == nil, "two pass types have the id '\(t.id)'")
            types[t.id] = t
        }
        return types
    }

    /// Loads and validates a recipe file.
    /// - Parameter passes: pass types beyond `standardPasses` the recipe may name.
    public static func load(path: String, passes extra: [any Pass.Type] = []) throws -> Recipe {
        guard let data = FileManager.default.contents(atPath: path) else {
            var why = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "file not found"
            // A bare name such as `int8` is a common slip for the bundled recipe's path.
            let bundled = "Recipes/\(path).json"
            if !path.contains("/"), FileManager.default.fileExists(atPath: bundled) { why += " (did you mean \(bundled)?)" }
            throw RecipeError(file: path, field: "", why: why)
        }
        return try parse(data, file: path, passes: extra)
    }

    /// Parses and validates recipe JSON; `file` names it in errors.
    /// - Parameter passes: pass types beyond `standardPasses` the recipe may name (a pass defined
    ///   outside this module registers itself this way; the pipeline needs nothing else).
    public static func parse(_ data: Data, file: String, passes extra: [any Pass.Type] = []) throws -> Recipe {
        let passTypes = Self.passTypes(adding: extra)
        let json: JSONValue
        do {
            json = try data.withUnsafeBytes { try JSONValue.parse($0) }
        } catch {
            throw RecipeError(file: file, field: "", why: "is not valid JSON (\(error))")
        }
        var root = try RecipeFields(json, file: file, path: "")
        let name = try root.string("name", default: URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent)
        let description = try root.optionalString("description")
        let deflate = try root.bool("deflate", default: false)
        var calibration = CalibrationOptions()
        if var c = try root.object("calibration") {
            calibration.tokens = try c.int("tokens", default: calibration.tokens, range: 16 ... 1 << 24)
            calibration.ctx = try c.int("ctx", default: calibration.ctx, range: 16 ... 1 << 16)
            calibration.trueSequential = try c.bool("true_sequential", default: false)
            calibration.spread = try c.bool("spread", default: false)
            try c.finish()
        }
        var budget: Budget?
        if var b = try root.object("budget") {
            budget = Budget(maxPPLIncrease: try b.optionalDouble("max_ppl_increase", range: 0 ... 1000),
                            maxBytes: try b.optionalInt("max_bytes", range: 1 ... Int.max),
                            minCosine: try b.optionalDouble("min_cosine", range: -1 ... 1))
            try b.finish()
        }
        var passes: [any Pass] = []
        for var p in try root.objects("passes") {
            let kind = try p.string("pass", default: nil)
            guard let type = passTypes[kind] else {
                throw RecipeError(file: file, field: p.path + ".pass",
                                  why: "names unknown pass \(Excerpt.quoted(kind)) (known: \(passTypes.keys.sorted().joined(separator: ", ")))")
            }
            passes.append(try type.init(fields: &p))
            try p.finish()
        }
        try root.finish()
        try checkOrder(passes, file: file)
        if calibration.trueSequential, passes.contains(where: { $0.calibrationNeeds.contains(.floatCross) }) {
            throw RecipeError(file: file, field: "calibration.true_sequential",
                              why: "cannot be combined with a pass that pairs the float model's inputs (sparsegpt_prune target: float)")
        }
        return Recipe(name: name, description: description, passes: passes, budget: budget, deflate: deflate, json: json,
                      calibration: calibration)
    }

    /// The first pass that needs calibration text (index and id), if any.
    public var firstCalibrationPass: (index: Int, id: String)? {
        for (i, p) in passes.enumerated() where p.needsCalibrationText { return (i, type(of: p).id) }
        return nil
    }

    /// Refuses pass orders that make no sense: pruning after quantization, packing before the end, two packs.
    static func checkOrder(_ passes: [any Pass], file: String) throws {
        var highest: (stage: PassStage, index: Int)?
        for (i, p) in passes.enumerated() {
            let stage = type(of: p).stage
            if let h = highest, stage < h.stage {
                throw RecipeError(file: file, field: "passes[\(i)].pass",
                                  why: "'\(type(of: p).id)' cannot come after passes[\(h.index)] '\(type(of: passes[h.index]).id)': order is prune, then quantize/cast, then distill, then pack")
            }
            if stage == .pack, let h = highest, h.stage == .pack {
                throw RecipeError(file: file, field: "passes[\(i)].pass", why: "packs a second time (passes[\(h.index)] already packs)")
            }
            if stage == .distill, let h = highest, h.stage == .distill {
                throw RecipeError(file: file, field: "passes[\(i)].pass", why: "distills a second time (passes[\(h.index)] already distills)")
            }
            if p.needs.contains(.encoders), !p.fitsEncodersPerBlock,
               let g = passes[..<i].firstIndex(where: { $0.refusesTrainingThrough != nil }), let why = passes[g].refusesTrainingThrough {
                throw RecipeError(file: file, field: "passes[\(i)].pass", why: "'\(type(of: p).id)' cannot follow passes[\(g)] \(why)")
            }
            if highest == nil || stage >= highest!.stage { highest = (stage, i) }
        }
    }
}

/// Strict reader of one JSON object of a recipe: every accessor marks its key as used, and
/// `finish()` rejects keys nobody asked for. Errors name the field path.
public struct RecipeFields {
    public let file: String
    public let path: String
    private let object: [String: JSONValue]
    private var used: Set<String> = []

    init(_ value: JSONValue, file: String, path: String) throws {
        guard case let .object(o) = value else {
            throw RecipeError(file: file, field: path.isEmpty ? "(root)" : path, why: "must be a JSON object")
        }
        self.file = file
        self.path = path
        self.object = o
    }

    private func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ why: String) -> RecipeError { RecipeError(file: file, field: field(key), why: why) }

    private mutating func take(_ key: String) -> JSONValue? {
        used.insert(key)
        if case .null = object[key] { return nil }
        return object[key]
    }

    /// Throws for any key not read by an accessor.
    public func finish() throws {
        if let extra = object.keys.filter({ !used.contains($0) }).sorted().first {
            throw RecipeError(file: file, field: field(Excerpt.escaped(extra)), why: "is not a known field here (known: \(used.sorted().joined(separator: ", ")))")
        }
    }

    public mutating func string(_ key: String, default def: String?, allowed: [String]? = nil) throws -> String {
        guard let v = take(key) else {
            if let def { return def }
            throw error(key, "is required")
        }
        guard case let .string(s) = v else { throw error(key, "must be a string") }
        if let allowed, !allowed.contains(s) {
            throw error(key, "is \(Excerpt.quoted(s)); expected one of: \(allowed.joined(separator: ", "))")
        }
        return s
    }

    /// One of a closed set of values, spelled as its raw value (`"rounding": "mse"`); the error
    /// for anything else lists the cases in declaration order.
    public mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, default def: E?) throws -> E
    where E.RawValue == String {
        let s = try string(key, default: def?.rawValue, allowed: E.allCases.map(\.rawValue))
        return E(rawValue: s)!
    }

    public mutating func optionalString(_ key: String) throws -> String? {
        guard let v = take(key) else { return nil }
        guard case let .string(s) = v else { throw error(key, "must be a string") }
        return s
    }

    public mutating func bool(_ key: String, default def: Bool) throws -> Bool {
        guard let v = take(key) else { return def }
        guard case let .bool(b) = v else { throw error(key, "must be true or false") }
        return b
    }

    public mutating func optionalDouble(_ key: String, range: ClosedRange<Double>) throws -> Double? {
        guard let v = take(key) else { return nil }
        guard case let .number(d) = v, d.isFinite else { throw error(key, "must be a number") }
        guard range.contains(d) else { throw error(key, "is \(fmt(d)); expected \(fmt(range.lowerBound))...\(fmt(range.upperBound))") }
        return d
    }

    /// A number in `range`; with `openUpper` the upper bound itself is excluded.
    public mutating func double(_ key: String, default def: Double?, range: ClosedRange<Double>, openUpper: Bool = false) throws -> Double {
        guard let v = take(key) else {
            if let def { return def }
            throw error(key, "is required")
        }
        guard case let .number(d) = v, d.isFinite else { throw error(key, "must be a number") }
        let upperOK = openUpper ? d < range.upperBound : d <= range.upperBound
        guard d >= range.lowerBound, upperOK else {
            throw error(key, "is \(fmt(d)); expected \(fmt(range.lowerBound)) <= value \(openUpper ? "<" : "<=") \(fmt(range.upperBound))")
        }
        return d
    }

    public mutating func optionalInt(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let v = take(key) else { return nil }
        guard case let .number(d) = v, d.isFinite, d == d.rounded(), abs(d) < 9e15 else { throw error(key, "must be an integer") }
        let i = Int(d)
        guard range.contains(i) else {
            let hi = range.upperBound == Int.max ? "" : "\(range.upperBound)"
            throw error(key, "is \(i); expected \(range.lowerBound)...\(hi)")
        }
        return i
    }

    public mutating func int(_ key: String, default def: Int?, range: ClosedRange<Int>, allowed: [Int]? = nil) throws -> Int {
        guard let i = try optionalInt(key, range: range) ?? def else { throw error(key, "is required") }
        if let allowed, !allowed.contains(i) {
            throw error(key, "is \(i); expected one of: \(allowed.map(String.init).joined(separator: ", "))")
        }
        return i
    }

    public mutating func strings(_ key: String, default def: [String]) throws -> [String] {
        guard let v = take(key) else { return def }
        guard case let .array(a) = v else { throw error(key, "must be an array of strings") }
        return try a.enumerated().map { i, e in
            guard case let .string(s) = e else { throw error("\(key)[\(i)]", "must be a string") }
            return s
        }
    }

    public mutating func ints(_ key: String, default def: [Int]) throws -> [Int] {
        guard let v = take(key) else { return def }
        guard case let .array(a) = v else { throw error(key, "must be an array of integers") }
        return try a.enumerated().map { i, e in
            guard case let .number(d) = e, d == d.rounded(), abs(d) < 1e9 else { throw error("\(key)[\(i)]", "must be an integer") }
            return Int(d)
        }
    }

    public mutating func object(_ key: String) throws -> RecipeFields? {
        guard let v = take(key) else { return nil }
        return try RecipeFields(v, file: file, path: field(key))
    }

    public mutating func objects(_ key: String) throws -> [RecipeFields] {
        guard let v = take(key) else { throw error(key, "is required") }
        guard case let .array(a) = v else { throw error(key, "must be an array of objects") }
        return try a.enumerated().map { i, e in try RecipeFields(e, file: file, path: field(key) + "[\(i)]") }
    }

    /// The shared selector fields: `kinds`, `include`, `exclude`, `exclude_layers`.
    public mutating func selector(defaultKinds: Set<TensorName.Kind>) throws -> TensorSelector {
        let names = try strings("kinds", default: defaultKinds.map(\.rawValue).sorted())
        var kinds = Set<TensorName.Kind>()
        for (i, n) in names.enumerated() {
            guard let k = TensorName.Kind(rawValue: n) else {
                throw error("kinds[\(i)]", "is \(Excerpt.quoted(n)); expected one of: \(TensorName.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            kinds.insert(k)
        }
        return TensorSelector(kinds: kinds, include: try strings("include", default: ["*"]),
                              exclude: try strings("exclude", default: []), excludeLayers: try ints("exclude_layers", default: []))
    }
}

func fmt(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
}
