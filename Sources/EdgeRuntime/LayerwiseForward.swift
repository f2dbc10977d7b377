import EdgeFormat

/// The forward pass one stage at a time over windows held by the caller, for work that goes
/// layer by layer (the compressor's sequential calibration): the residual stream of every window
/// is kept between stages, and each block is bound only while it runs, from whatever weights the
/// caller has for it then (float, or already compressed in any encoding the runtime computes with).
///
/// Every window starts at position 0. The arithmetic is `EdgeModel.forward`'s (`ForwardStep`).
public struct LayerwiseForward {
    public let config: ModelConfig
    /// Threads for matrix products and attention (at least 1).
    public var threads: Int
    /// What symmetric dense q8 weights multiply (`EdgeModel.activations`).
    public var activations: ActivationPrecision = .default
    /// Where the weights come from, for messages.
    public let source: String

    /// - Throws: `RuntimeError.badConfig` for a config that breaks a rule.
    public init(config: ModelConfig, source: String = "", threads: Int = EdgeModel.defaultThreads) throws {
        do {
            try config.validate(source: source)
        } catch let FormatError.invalid(_, what) {
            throw RuntimeError.badConfig(source: source, why: what)
        }
        self.config = config
        self.source = source
        self.threads = max(1, threads)
    }

    private var step: ForwardStep { ForwardStep(config: config, threads: threads, activations: activations) }

    /// The embeddings of `tokens` at positions 0 ..< T: [T, hidden] row-major.
    /// - Parameters:
    ///   - tokenEmbedding: `token_embd.weight` [vocab, hidden]; `positionEmbedding`: `pos_embd.weight` (GPT-2).
    /// - Throws: `RuntimeError` for a tensor that is mis-shaped or unusable, or a token outside the vocabulary.
    public func embed(_ tokens: [Int32], tokenEmbedding: WeightSource, positionEmbedding: WeightSource?) throws -> [Float] {
        let h = config.hiddenSize
        let token = try bind(TensorID.tokenEmbd, tokenEmbedding, shape: shape(of: .tokenEmbd))
        let position = try positionEmbedding.map { try bind(TensorID.posEmbd, $0, shape: shape(of: .posEmbd)) }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw RuntimeError.tokenOutOfRange(token: bad, vocabSize: config.vocabSize)
        }
        guard tokens.count <= config.maxPositions else {
            throw RuntimeError.contextFull(needed: tokens.count, capacity: config.maxPositions)
        }
        var x = [Float](repeating: 0, count: tokens.count * h)
        x.withUnsafeMutableBufferPointer { step.embed(tokens, start: 0, token: token, position: position, into: $0.baseAddress!) }
        return x
    }

    /// An encoder's embeddings of `sentences` (one after another, each from position 0): [N, hidden],
    /// N the total token count, from `token_embd`, `position_embd`, `token_types` and `token_embd_norm`
    /// (+ bias) in `tensors`.
    /// - Throws: `RuntimeError` for a missing or mis-shaped tensor, a token outside the vocabulary,
    ///   an empty sentence or one longer than `max_positions`.
    public func embedSentences(_ sentences: [[Int32]], tensors: [String: WeightSource]) throws -> [Float] {
        precondition(config.isEncoder, "LayerwiseForward.embedSentences: \(config.architecture) is not an encoder")
        let encoder = EncoderStep(config: config, threads: threads, activations: activations)
        try encoder.check(sentences)
        let h = config.hiddenSize, n = sentences.reduce(0) { $0 + $1.count }
        func linear(_ id: TensorID) throws -> Linear { try bind(id, tensors[id.name], shape: shape(of: id)) }
        let token = try linear(.tokenEmbd), position = try linear(.posEmbd), types = try linear(TensorID(.tokenTypes))
        let norm = TensorID(.tokenEmbdNorm)
        let w = try vector(norm, tensors, shape: [h]), b = try vector(norm.bias, tensors, shape: [h])
        var x = [Float](repeating: 0, count: n * h)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * h))
        defer { scratch.deallocate() }
        x.withUnsafeMutableBufferPointer {
            encoder.embed(sentences, token: token, position: position, types: types, norm: w, normBias: b, into: $0.baseAddress!, scratch: scratch)
        }
        return x
    }

    /// Runs block `layer` of an encoder over the residual stream x [N, hidden] of sentences of
    /// `lengths` (one after another), in place.
    /// - Throws: `RuntimeError` naming a missing, mis-shaped or unusable tensor of the block.
    public func block(_ layer: Int, tensors: [String: WeightSource], x: inout [Float], lengths: [Int], observe: ActivationObserver? = nil) throws {
        precondition(config.isEncoder, "LayerwiseForward.block(lengths:): \(config.architecture) is not an encoder")
        let b = try bindBlock(layer, tensors: tensors)
        let n = lengths.reduce(0, +)
        precondition(x.count == n * config.hiddenSize, "LayerwiseForward.block: x holds \(x.count) values, not \(n) tokens")
        guard n > 0 else { return }
        let buffers = EncoderBuffers(config: config, blocks: [b.sizes], tokens: n)
        let encoder = EncoderStep(config: config, threads: threads, activations: activations)
        x.withUnsafeMutableBufferPointer { encoder.block(b, x: $0.baseAddress!, lengths: lengths, buffers: buffers, observe: observe) }
    }

    /// Runs block `layer` over one window's residual stream x [T, hidden] in place.
    /// - Parameters:
    ///   - tensors: the block's tensors by canonical name (others are ignored).
    ///   - observe: sees each linear weight's input, as `EdgeModel.activationObserver`.
    /// - Throws: `RuntimeError` naming a missing, mis-shaped or unusable tensor of the block.
    public func block(_ layer: Int, tensors: [String: WeightSource], x: inout [Float], observe: ActivationObserver? = nil) throws {
        precondition(!config.isEncoder, "LayerwiseForward.block: an encoder's block needs the sentence lengths")
        let b = try bindBlock(layer, tensors: tensors)
        let h = config.hiddenSize, T = x.count / h
        precondition(x.count == T * h, "LayerwiseForward.block: x holds \(x.count) values, not a multiple of \(h)")
        guard T > 0 else { return }
        let kvd = b.sizes.numKVHeads * config.headDim
        let keys = UnsafeMutablePointer<Float>.allocate(capacity: T * kvd)
        let values = UnsafeMutablePointer<Float>.allocate(capacity: T * kvd)
        defer { keys.deallocate(); values.deallocate() }
        let buffers = ForwardBuffers(config: config, blocks: [b.sizes], tokens: T)
        x.withUnsafeMutableBufferPointer { xp in
            buffers.x.update(from: xp.baseAddress!, count: T * h)
            step.block(b, x: buffers.x, tokens: T, start: 0, keys: KVStore(base: UnsafeMutableRawPointer(keys), precision: .f32),
                       values: KVStore(base: UnsafeMutableRawPointer(values), precision: .f32), capacity: T, buffers: buffers, observe: observe)
            xp.baseAddress!.update(from: buffers.x, count: T * h)
        }
    }

    /// The final norm of x [T, hidden] (the output head's input): [T, hidden].
    /// - Throws: `RuntimeError` for a missing or mis-shaped norm tensor.
    public func finalNorm(_ x: [Float], tensors: [String: WeightSource]) throws -> [Float] {
        let h = config.hiddenSize, T = x.count / h
        let w = try vector(TensorID(.outputNorm), tensors, shape: [h])
        let b = config.hasBiases ? try vector(TensorID(.outputNorm, bias: true), tensors, shape: [h]) : nil
        var src = x, out = [Float](repeating: 0, count: x.count)
        src.withUnsafeMutableBufferPointer { s in
            out.withUnsafeMutableBufferPointer { step.norm(s.baseAddress!, $0.baseAddress!, rows: T, w, b) }
        }
        return out
    }

    private func shape(of id: TensorID) -> [Int] { config.schema().first { $0.id == id }?.shape ?? [] }

    /// Block `layer` bound from `tensors`, each checked against the shape the config implies.
    func bindBlock(_ layer: Int, tensors: [String: WeightSource]) throws -> Block {
        var shapes: [String: [Int]] = [:]
        let schema = config.schema()
        for spec in schema where spec.id.layer == layer { shapes[spec.name] = spec.shape }
        return try Block(layer: layer, config: config, schema: schema,
                         matrix: { id in try bind(id, tensors[id.name], shape: shapes[id.name] ?? []) },
                         vector: { id in try vector(id, tensors, shape: shapes[id.name] ?? []) })
    }

    private func bind(_ id: TensorID, _ t: WeightSource?, shape: [Int]) throws -> Linear {
        guard let t else { throw RuntimeError.missingTensor(source: source, tensor: id.name) }
        guard t.shape == shape else { throw RuntimeError.badShape(source: source, tensor: id.name, expected: shape, actual: t.shape) }
        return try Linear(name: id.name, source: t, origin: source)
    }

    private func vector(_ id: TensorID, _ tensors: [String: WeightSource], shape: [Int]) throws -> [Float] {
        guard let t = tensors[id.name] else { throw RuntimeError.missingTensor(source: source, tensor: id.name) }
        guard t.shape == shape else { throw RuntimeError.badShape(source: source, tensor: id.name, expected: shape, actual: t.shape) }
        try t.checked(name: id.name, source: source)
        return t.floats()
    }
}
