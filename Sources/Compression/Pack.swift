import EdgeFormat
import Foundation

/// Chooses the stored layout of each selected tensor among the packings the format can write,
/// and records the choice. `auto` picks the smallest available; this version of the format writes
/// dense layouts only (CSR / bitmask / N:M are reserved encodings), so `auto` records dense and,
/// for information, the size a CSR layout would take.
///
/// Recipe: `{"pass": "pack", "format": "auto" | "dense", <selector>}`; it must be the last pass.
public struct Pack: Pass {
    public static let id = "pack"
    public static let stage = PassStage.pack

    public let format: String
    public let selector: TensorSelector
    private var chosen: [String: Int] = [:]
    private var denseBytes = 0
    private var csrEstimateBytes = 0

    public init(format: String = "auto", selector: TensorSelector = TensorSelector(kinds: Set(TensorName.Kind.allCases))) {
        self.format = format
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        format = try f.string("format", default: "auto", allowed: ["auto", "dense", "csr", "bitmask"])
        if format == "csr" || format == "bitmask" {
            throw f.error("format", "is '\(format)', which this version of the .edge format cannot write yet; use 'auto' (picks the smallest layout available) or 'dense'")
        }
        selector = try f.selector(defaultKinds: Set(TensorName.Kind.allCases))
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        let dense = t.encoded?.payload.count ?? t.values.count * 4
        denseBytes += dense
        if t.shape.count == 2 {
            // What CSR would cost: row pointers (u32) + u16 column indices + values at the current width.
            let nnz = t.values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            let valueBytes = Double(dense) / Double(max(1, t.values.count))
            csrEstimateBytes += (t.rows + 1) * 4 + nnz * 2 + Int((Double(nnz) * valueBytes).rounded(.up))
        } else {
            csrEstimateBytes += dense
        }
        chosen["dense", default: 0] += 1
    }

    public func record() -> JSONValue {
        .object(["pass": .string(Self.id), "format": .string(format), "selector": selector.record,
                 "chosen": .object(chosen.mapValues { .number(Double($0)) }),
                 "dense_bytes": .number(Double(denseBytes)),
                 "csr_estimate_bytes": .number(Double(csrEstimateBytes)),
                 "available": .array([.string("dense")])])
    }
}
