
/// One transformer block's tensors, bound to whatever a consumer computes with: the runtime binds
/// matrices to `Linear` and vectors to `[Float]`, training binds both to its parameters. The wiring
/// (which role feeds which field, which are optional) is written here once.
///
/// Biases and norm biases are present when the config `hasBiases` (GPT-2, BERT); `gate` when the block
/// has `ffnGate` (Llama's SwiGLU). In a post-norm block (`ModelConfig.isPostNorm`, BERT) `attnNorm`
/// is the norm after the attention's residual add (`attn_output_norm`) and `ffnNorm` the one after
/// the MLP's (`layer_output_norm`).
public struct BlockWeights<Matrix, Vector> {
    /// Pre-attention norm scale (h) and bias (h).
    public var attnNorm: Vector, attnNormBias: Vector?
    /// Q, K, V projections: (nh*hd, h), (nkv*hd, h), (nkv*hd, h); biases (nh*hd), (nkv*hd), (nkv*hd).
    public var q: Matrix, k: Matrix, v: Matrix
    public var qBias: Vector?, kBias: Vector?, vBias: Vector?
    /// Attention output projection (h, nh*hd) and bias (h).
    public var o: Matrix, oBias: Vector?
    /// Pre-MLP norm scale (h) and bias (h).
    public var ffnNorm: Vector, ffnNormBias: Vector?
    /// SwiGLU gate projection (f, h).
    public var gate: Matrix?
    /// MLP up projection (f, h) and bias (f).
    public var up: Matrix, upBias: Vector?
    /// MLP down projection (h, f) and bias (h).
    public var down: Matrix, downBias: Vector?
    /// The layer's sizes (`ModelConfig.sizes(layer:)`).
    public var sizes: ModelConfig.LayerSizes

    /// Binds layer `layer` of `schema` (from `config.schema()`): `matrix` and `vector` are called
    /// once per tensor of the layer, in the schema's (canonical) order; optional fields are nil when
    /// the schema lacks them.
    /// - Throws: what `matrix` or `vector` throws.
    public init(layer l: Int, config: ModelConfig, schema: ModelSchema,
                matrix: (TensorID) throws -> Matrix, vector: (TensorID) throws -> Vector) throws {
        func id(_ role: TensorRole, bias: Bool = false) -> TensorID { TensorID(layer: l, role, bias: bias) }
        func optMatrix(_ role: TensorRole) throws -> Matrix? { schema.contains(id(role)) ? try matrix(id(role)) : nil }
        func bias(_ role: TensorRole) throws -> Vector? {
            schema.contains(id(role, bias: true)) ? try vector(id(role, bias: true)) : nil
        }
        let (n1, n2): (TensorRole, TensorRole) = config.isPostNorm ? (.attnOutNorm, .layerOutNorm) : (.attnNorm, .ffnNorm)
        // Norms are bound where the canonical order has them: before their sublayer (pre-norm) or
        // after its output projection (post-norm).
        let post = config.isPostNorm
        var first: (Vector, Vector?)?, second: (Vector, Vector?)?
        if !post { first = (try vector(id(n1)), try bias(n1)) }
        q = try matrix(id(.attnQ))
        qBias = try bias(.attnQ)
        k = try matrix(id(.attnK))
        kBias = try bias(.attnK)
        v = try matrix(id(.attnV))
        vBias = try bias(.attnV)
        o = try matrix(id(.attnOutput))
        oBias = try bias(.attnOutput)
        if post { first = (try vector(id(n1)), try bias(n1)) }
        if !post { second = (try vector(id(n2)), try bias(n2)) }
        gate = try optMatrix(.ffnGate)
        up = try matrix(id(.ffnUp))
        upBias = try bias(.ffnUp)
        down = try matrix(id(.ffnDown))
        downBias = try bias(.ffnDown)
        if post { second = (try vector(id(n2)), try bias(n2)) }
        (attnNorm, attnNormBias) = first!
        (ffnNorm, ffnNormBias) = second!
        sizes = config.sizes(layer: l)
    }

    /// The matrices in the order the block multiplies by them (gate before up when present).
    public var matrices: [Matrix] { [q, k, v, o] + (gate.map { [$0] } ?? []) + [up, down] }
}

/// A whole model's tensors bound like `BlockWeights`: embeddings, blocks, final norm and head.
public struct ModelWeights<Matrix, Vector> {
    /// Token embedding (vocab, h).
    public var tokenEmbd: Matrix
    /// Learned positions (max_positions, h), GPT-2.
    public var posEmbd: Matrix?
    /// The blocks, in layer order.
    public var blocks: [BlockWeights<Matrix, Vector>]
    /// Token-type embedding (type_vocab, h), BERT.
    public var tokenTypes: Matrix?
    /// Norm of the summed embeddings (h) and its bias, BERT.
    public var embedNorm: Vector?, embedNormBias: Vector?
    /// Final norm scale (h) and bias (h, GPT-2); nil for an encoder.
    public var outputNorm: Vector?, outputNormBias: Vector?
    /// The output head (vocab, h): `output.weight`, or the token embedding itself when tied; nil for an encoder.
    public var output: Matrix?

    /// Binds every tensor of `config.schema()`, in canonical order: token_embd, position_embd,
    /// (token_types, token_embd_norm + bias for an encoder), each block (`BlockWeights`), output_norm
    /// (+ bias), output (not loaded when tied; neither exists in an encoder).
    /// - Throws: what `matrix` or `vector` throws.
    public init(config: ModelConfig, matrix: (TensorID) throws -> Matrix, vector: (TensorID) throws -> Vector) throws {
        let schema = config.schema()
        tokenEmbd = try matrix(.tokenEmbd)
        posEmbd = schema.contains(.posEmbd) ? try matrix(.posEmbd) : nil
        let types = TensorID(.tokenTypes), norm = TensorID(.tokenEmbdNorm)
        tokenTypes = schema.contains(types) ? try matrix(types) : nil
        embedNorm = schema.contains(norm) ? try vector(norm) : nil
        embedNormBias = schema.contains(norm.bias) ? try vector(norm.bias) : nil
        var blocks: [BlockWeights<Matrix, Vector>] = []
        for l in 0 ..< config.numLayers {
            blocks.append(try BlockWeights(layer: l, config: config, schema: schema, matrix: matrix, vector: vector))
        }
        self.blocks = blocks
        guard !config.isEncoder else { return }
        outputNorm = try vector(TensorID(.outputNorm))
        let normBias = TensorID(.outputNorm, bias: true)
        outputNormBias = schema.contains(normBias) ? try vector(normBias) : nil
        output = config.tiedEmbeddings ? tokenEmbd : try matrix(.output)
    }
}
