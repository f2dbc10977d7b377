import EdgeFormat
import Foundation

/// Chooses the stored layout of each selected tensor: dense as encoded, sparse (`csr`, `bitmask`),
/// or packed N:M (`nm`), with the values kept in the tensor's value encoding (f32, f16 or q8; the q8
/// scales and zero points are carried over), so the packed tensor decodes to exactly the same values.
///
/// - `auto` computes each candidate's exact payload size (dense, csr, bitmask, and nm for every
///   common N:M pattern the tensor conforms to: 1:8, 1:4, 2:8, 1:2, 2:4, 4:8) and keeps the smallest
///   (on a tie: dense, then nm, then bitmask, then csr); 1-D tensors and q4 / q3 / q4k tensors stay dense.
/// - `csr` / `bitmask` pack every selected matrix that way (1-D tensors stay dense); a q4, q3 or q4k tensor is an
///   error, as is csr for a matrix whose column gaps no index width holds (over 256 with more than 65536 columns).
/// - `nm` packs every selected matrix as nm with `pattern` when given, else the smallest common
///   pattern it conforms to; a matrix that does not conform (or is q4 / q3) is an error naming it.
/// - `dense` keeps every layout.
///
/// Recipe: `{"pass": "pack", "format": "auto" | "dense" | "csr" | "bitmask" | "nm", "pattern": "N:M" (nm only), <selector>}`;
/// it must be the last pass.
public struct Pack: Pass {
    public static let id = "pack"
    public static let stage = PassStage.pack

    /// The layout to choose (see the type's comment).
    public let format: PackFormat
    /// For `nm`: the pattern to pack with (nil: the smallest conforming common one).
    public let pattern: NMPattern?
    public let selector: TensorSelector
    /// Tensors per chosen layout.
    private var counts: [String: Int] = [:]
    /// Payload bytes per chosen layout.
    private var bytes: [String: Int] = [:]
    /// Payload bytes of the selected tensors before packing.
    private var denseBytes = 0
    /// The layout chosen for each tensor, by name ("nm 2:4" for nm).
    private var choices: [String: String] = [:]

    public init(format: PackFormat = .auto, pattern: NMPattern? = nil,
                selector: TensorSelector = TensorSelector(kinds: Set(TensorName.Kind.allCases))) {
        self.format = format
        self.pattern = pattern
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        format = try f.choice("format", default: PackFormat.auto)
        if let text = try f.optionalString("pattern") {
            guard format == .nm else { throw f.error("pattern", "is only used with format 'nm' (auto tries every common pattern)") }
            guard let p = NMPattern(parsing: text) else {
                throw f.error("pattern", "is '\(text)'; expected \"N:M\" with integers 1 <= N < M <= \(NMPattern.maxM), e.g. \"2:4\"")
            }
            pattern = p
        } else {
            pattern = nil
        }
        selector = try f.selector(defaultKinds: Set(TensorName.Kind.allCases))
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        let dense = t.encoded ?? .f32(name: t.name, shape: t.shape, values: t.values)
        denseBytes += dense.payload.count
        var packed = dense
        if t.shape.count == 2 && format != .dense {
            if dense.encoding == .q4 || dense.encoding == .q3 || dense.encoding == .q4k || dense.encoding == .q3s {
                if format != .auto {
                    throw PassError(pass: Self.id, tensor: t.name,
                                    why: "is \(dense.encoding.rawValue), which stays dense: \(format.rawValue) holds f32, f16 or q8 values (use format 'auto' or 'dense', or exclude it)")
                }
            } else if let c = dense.sparseCandidates() {
                switch format {
                case .csr:
                    guard c.csrBytes != nil else {
                        throw PassError(pass: Self.id, tensor: t.name,
                                        why: "cannot be packed csr: a column gap exceeds 256 and it has \(t.shape[1]) columns, more than 16-bit indices address (use 'auto' or 'bitmask')")
                    }
                    if let p = dense.packedSparse(as: .csr) { packed = p }
                case .bitmask:
                    if let p = dense.packedSparse(as: .bitmask) { packed = p }
                case .nm:
                    packed = try packNM(dense)
                case .auto, .dense:
                    let nm = dense.bestNMCandidate(nnz: c.nnz)
                    let best = min(c.denseBytes, nm?.bytes ?? Int.max, c.bitmaskBytes, c.csrBytes ?? Int.max)
                    if best == c.denseBytes {
                        break
                    } else if let nm, best == nm.bytes, let p = dense.packedNM(n: nm.n, m: nm.m) {
                        packed = p
                    } else if let p = dense.packedSparse(as: best == c.bitmaskBytes ? .bitmask : .csr) {
                        packed = p
                    }
                }
            }
        }
        if packed.encoding != dense.encoding {
            t.values = packed.payload.withUnsafeBytes { decodePayload($0, encoding: packed.encoding, shape: packed.shape, params: packed.params) }
            t.encoded = packed
        }
        let layout = packed.encoding.isSparse || packed.encoding == .nm ? packed.encoding.rawValue : "dense"
        counts[layout, default: 0] += 1
        bytes[layout, default: 0] += packed.payload.count
        choices[t.name] = packed.encoding == .nm ? "nm \(packed.params.n ?? 0):\(packed.params.m ?? 0)" : layout
    }

    /// `dense` packed as nm with `pattern`, or the smallest common pattern it conforms to.
    /// - Throws: `PassError` naming the tensor when it does not conform.
    private func packNM(_ dense: EncodedTensor) throws -> EncodedTensor {
        let rows = dense.shape[0], cols = dense.shape[1]
        if let pattern {
            guard let p = dense.packedNM(n: pattern.n, m: pattern.m) else {
                throw PassError(pass: Self.id, tensor: dense.name,
                                why: "[\(rows), \(cols)] is not \(pattern): some group of \(pattern.m) inputs of a row holds more than \(pattern.n) non-zeros (prune it with {\"pass\": \"magnitude_prune\", \"pattern\": \"\(pattern)\"} first, or use format 'auto')")
            }
            return p
        }
        guard let best = dense.bestNMCandidate(), let p = dense.packedNM(n: best.n, m: best.m) else {
            let tried = EncodedTensor.nmCandidatePatterns.map { "\($0.n):\($0.m)" }.joined(separator: ", ")
            throw PassError(pass: Self.id, tensor: dense.name,
                            why: "[\(rows), \(cols)] is not N:M sparse: it fits none of \(tried) (prune it with an N:M pattern first, exclude it, or use format 'auto')")
        }
        return p
    }

    public func record() -> JSONValue {
        let packedBytes = bytes.values.reduce(0, +)
        var r: [String: JSONValue] = ["pass": .string(Self.id), "format": .string(format.rawValue), "selector": selector.record,
                                     "chosen": .object(counts.mapValues { .number(Double($0)) }),
                                     "bytes": .object(bytes.mapValues { .number(Double($0)) }),
                                     "dense_bytes": .number(Double(denseBytes)),
                                     "packed_bytes": .number(Double(packedBytes)),
                                     "bytes_saved": .number(Double(denseBytes - packedBytes)),
                                     "per_tensor": .object(choices.mapValues { .string($0) })]
        if let pattern { r["pattern"] = .string(pattern.description) }
        return .object(r)
    }
}

/// The layout a pack pass chooses (`"format"` in recipes; see `Pack`).
public enum PackFormat: String, CaseIterable, Codable, Sendable {
    case auto, dense, csr, bitmask, nm
}
