import EdgeFormat
import Foundation

/// Chooses the stored layout of each selected tensor: dense as encoded, or sparse (`csr`, `bitmask`)
/// with the values kept in the tensor's value encoding (f32, f16 or q8; the q8 scales and zero points
/// are carried over), so the packed tensor decodes to exactly the same values.
///
/// - `auto` computes each candidate's exact payload size (dense, csr, bitmask) and keeps the smallest
///   (dense on a tie); 1-D tensors and q4 tensors stay dense.
/// - `csr` / `bitmask` pack every selected matrix that way (1-D tensors stay dense); a q4 tensor is an
///   error, as is csr for a matrix whose column gaps no index width holds (over 256 with more than 65536 columns).
/// - `dense` keeps every layout.
///
/// Recipe: `{"pass": "pack", "format": "auto" | "dense" | "csr" | "bitmask", <selector>}`; it must be the last pass.
public struct Pack: Pass {
    public static let id = "pack"
    public static let stage = PassStage.pack

    /// "auto", "dense", "csr" or "bitmask".
    public let format: String
    public let selector: TensorSelector
    /// Tensors per chosen layout.
    private var counts: [String: Int] = [:]
    /// Payload bytes per chosen layout.
    private var bytes: [String: Int] = [:]
    /// Payload bytes of the selected tensors before packing.
    private var denseBytes = 0
    /// The layout chosen for each tensor, by name.
    private var choices: [String: String] = [:]

    public init(format: String = "auto", selector: TensorSelector = TensorSelector(kinds: Set(TensorName.Kind.allCases))) {
        self.format = format
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        format = try f.string("format", default: "auto", allowed: ["auto", "dense", "csr", "bitmask"])
        selector = try f.selector(defaultKinds: Set(TensorName.Kind.allCases))
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        let dense = t.encoded ?? .f32(name: t.name, shape: t.shape, values: t.values)
        denseBytes += dense.payload.count
        var packed = dense
        if t.shape.count == 2 && format != "dense" {
            if dense.encoding == .q4 {
                if format != "auto" {
                    throw PassError(pass: Self.id, tensor: t.name,
                                    why: "is q4, which stays dense: \(format) holds f32, f16 or q8 values (use format 'auto' or 'dense', or exclude it)")
                }
            } else if let c = dense.sparseCandidates() {
                let target: Encoding?
                switch format {
                case "csr":
                    guard c.csrBytes != nil else {
                        throw PassError(pass: Self.id, tensor: t.name,
                                        why: "cannot be packed csr: a column gap exceeds 256 and it has \(t.shape[1]) columns, more than 16-bit indices address (use 'auto' or 'bitmask')")
                    }
                    target = .csr
                case "bitmask": target = .bitmask
                default:
                    let best = min(c.denseBytes, c.bitmaskBytes, c.csrBytes ?? Int.max)
                    target = best == c.denseBytes ? nil : best == c.bitmaskBytes ? .bitmask : .csr
                }
                if let target, let p = dense.packedSparse(as: target) { packed = p }
            }
        }
        if packed.encoding != dense.encoding {
            t.values = packed.payload.withUnsafeBytes { decodePayload($0, encoding: packed.encoding, shape: packed.shape, params: packed.params) }
            t.encoded = packed
        }
        let layout = packed.encoding.isSparse ? packed.encoding.rawValue : "dense"
        counts[layout, default: 0] += 1
        bytes[layout, default: 0] += packed.payload.count
        choices[t.name] = layout
    }

    public func record() -> JSONValue {
        let packedBytes = bytes.values.reduce(0, +)
        return .object(["pass": .string(Self.id), "format": .string(format), "selector": selector.record,
                        "chosen": .object(counts.mapValues { .number(Double($0)) }),
                        "bytes": .object(bytes.mapValues { .number(Double($0)) }),
                        "dense_bytes": .number(Double(denseBytes)),
                        "packed_bytes": .number(Double(packedBytes)),
                        "bytes_saved": .number(Double(denseBytes - packedBytes)),
                        "per_tensor": .object(choices.mapValues { .string($0) })])
    }
}
