import Foundation

/// Loss of one batch, as means over the positions that carry each term.
public struct LossValue: Equatable, Sendable {
    /// The loss minimised: klWeight * T^2 * KL + alpha * CE.
    public var loss: Double
    /// Mean KL(teacher_T || student_T) per position (0 without a teacher).
    public var kl: Double
    /// Mean cross-entropy of the next token (nats).
    public var ce: Double
}

/// Distillation loss over logits [N, vocab]: per position, T^2 * KL(softmax(t/T) || softmax(s/T))
/// averaged over all N positions (when a teacher is given), plus alpha * the cross-entropy of
/// `targets[i]` (skipped where it is negative) averaged over the positions that have a target.
/// Replaces `logits` by dLoss/dlogits.
public func distillationLoss<R: TrainScalar>(logits: Buf<R>, teacher: UnsafePointer<Float>?, targets: [Int32], vocab V: Int,
                                             temperature T: Double, alpha: Double, threads: Int = 1) -> LossValue {
    let N = targets.count
    precondition(logits.count == N * V, "loss: logits hold \(logits.count) values, expected \(N) x \(V)")
    let withCE = targets.filter { $0 >= 0 }.count
    let klScale = teacher == nil ? 0 : 1 / Double(N)
    let ceScale = withCE == 0 ? 0 : alpha / Double(withCE)
    var kls = [Double](repeating: 0, count: N), ces = [Double](repeating: 0, count: N)
    let chunks = N * V < 1 << 16 ? 1 : max(1, min(threads, N))
    kls.withUnsafeMutableBufferPointer { klp in
        ces.withUnsafeMutableBufferPointer { cep in
            parallel(chunks) { c in
                var ps = [Double](repeating: 0, count: V), pt = [Double](repeating: 0, count: V), p1 = [Double](repeating: 0, count: V)
                for i in stride(from: c, to: N, by: chunks) {
                    let z = logits.p + i * V
                    // Cross-entropy at temperature 1.
                    let target = Int(targets[i])
                    if target >= 0 {
                        softmax(z, count: V, temperature: 1, into: &p1)
                        cep[i] = -Foundation.log(max(p1[target], Double.leastNormalMagnitude))
                    }
                    if let teacher {
                        // log p_j = z_j / T - max - log(sum): no logarithm per element.
                        let (ms, ss) = softmax(z, count: V, temperature: T, into: &ps)
                        let t = teacher + i * V
                        let (mt, st) = softmax(t, count: V, temperature: T, into: &pt)
                        let shift = (mt + Foundation.log(st)) - (ms + Foundation.log(ss))
                        var kl = 0.0
                        for j in 0 ..< V where pt[j] > 0 {
                            kl += pt[j] * ((Double(t[j]) - Double(z[j])) / T - shift)
                        }
                        klp[i] = kl
                    }
                    for j in 0 ..< V {
                        var g = 0.0
                        if teacher != nil { g += klScale * T * (ps[j] - pt[j]) }
                        if target >= 0 { g += ceScale * (p1[j] - (j == target ? 1 : 0)) }
                        z[j] = R(g)
                    }
                }
            }
        }
    }
    let kl = kls.reduce(0, +) / Double(N)
    let ce = withCE == 0 ? 0 : ces.reduce(0, +) / Double(withCE)
    return LossValue(loss: (teacher == nil ? 0 : T * T * kl) + alpha * ce, kl: kl, ce: ce)
}

/// softmax(z / T) into p: the exponentials in S (Float for training: the float `exp` is several
/// times faster than the double one), their sum in Double.
/// - Returns: the largest z / T and the sum of exp(z / T - that), so log p_j = z_j / T - max - log(sum).
@discardableResult @inline(__always)
func softmax<S: TrainScalar>(_ z: UnsafePointer<S>, count: Int, temperature T: Double, into p: inout [Double]) -> (max: Double, sum: Double) {
    let t = S(T)
    var m = -S.infinity
    for j in 0 ..< count { m = max(m, z[j] / t) }
    var sum = 0.0
    p.withUnsafeMutableBufferPointer { p in
        for j in 0 ..< count {
            let e = Double(S.exp(z[j] / t - m))
            p[j] = e
            sum += e
        }
        for j in 0 ..< count { p[j] /= sum }
    }
    return (Double(m), sum)
}

/// Distillation loss of an encoder over last hidden states [B*S, h] (B sentences of S tokens):
/// sum ||student - teacher||^2 / sum ||teacher||^2 over all tokens (the mean squared error per
/// token, divided by the teacher's mean squared norm, so that a learning rate does not depend on the
/// model's scale), plus `cosine` times the mean over the sentences of 1 - cos(student, teacher)
/// of their pooled embeddings (the mean of the tokens, or the first token with `firstToken`, as
/// `pooling` cls). Replaces `hidden` by dLoss/dhidden.
/// - Returns: `loss` the total, `kl` the normalized squared error, `ce` the mean 1 - cosine.
public func hiddenStateLoss<R: TrainScalar>(hidden: Buf<R>, teacher: UnsafePointer<Float>, batch B: Int, length S: Int, width h: Int,
                                            cosine weight: Double, firstToken: Bool = false) -> LossValue {
    let N = B * S
    precondition(hidden.count == N * h, "loss: hidden states hold \(hidden.count) values, expected \(N) x \(h)")
    var tn = 0.0, se = 0.0
    for i in 0 ..< N * h {
        let t = Double(teacher[i])
        tn += t * t
        se += (Double(hidden.p[i]) - t) * (Double(hidden.p[i]) - t)
    }
    tn = max(tn, Double.leastNormalMagnitude)
    // Cosine term: gradients of the pooled vectors first (they read the student's values).
    var cosLoss = 0.0
    var dPooled: [[Double]] = []
    if weight > 0 {
        let rows = firstToken ? 1 : S
        for b in 0 ..< B {
            var ps = [Double](repeating: 0, count: h), pt = [Double](repeating: 0, count: h)
            for t in 0 ..< rows {
                let r = (b * S + t) * h
                for j in 0 ..< h { ps[j] += Double(hidden.p[r + j]); pt[j] += Double(teacher[r + j]) }
            }
            for j in 0 ..< h { ps[j] /= Double(rows); pt[j] /= Double(rows) }
            var dot = 0.0, ss = 0.0, tt = 0.0
            for j in 0 ..< h { dot += ps[j] * pt[j]; ss += ps[j] * ps[j]; tt += pt[j] * pt[j] }
            let ns = max(ss.squareRoot(), 1e-12), nt = max(tt.squareRoot(), 1e-12), c = dot / (ns * nt)
            cosLoss += (1 - c) / Double(B)
            // d(1 - c)/dps = -(pt / (|ps||pt|) - c ps / |ps|^2), weighted and spread over the pooled rows
            let f = weight / Double(B) / Double(rows)
            dPooled.append((0 ..< h).map { j in -f * (pt[j] / (ns * nt) - c * ps[j] / (ns * ns)) })
        }
    }
    let g = 2 / tn
    for i in 0 ..< N * h { hidden.p[i] = R(g * (Double(hidden.p[i]) - Double(teacher[i]))) }
    if weight > 0 {
        let rows = firstToken ? 1 : S
        for b in 0 ..< B {
            for t in 0 ..< rows {
                let r = (b * S + t) * h
                for j in 0 ..< h { hidden.p[r + j] += R(dPooled[b][j]) }
            }
        }
    }
    let mse = se / tn
    return LossValue(loss: mse + weight * cosLoss, kl: mse, ce: cosLoss)
}

/// Similarity-structure loss of an encoder over a batch of B sentences: the mean over the pairs
/// i != j of (cos(s_i, s_j) - cos(t_i, t_j))^2, where s and t are the student's and the teacher's
/// pooled embeddings [B, h] (row-major). It asks the student to keep the teacher's geometry among
/// sentences (what retrieval and clustering read), not only each embedding's direction.
/// - Returns: the loss and dLoss/d(student pooled embeddings) [B, h]; zero for B < 2.
public func similarityStructureLoss(student s: [Double], teacher t: [Double], batch B: Int, width h: Int) -> (loss: Double, gradient: [Double]) {
    precondition(s.count == B * h && t.count == B * h, "similarity loss: \(s.count) and \(t.count) values for \(B) x \(h)")
    var grad = [Double](repeating: 0, count: B * h)
    guard B >= 2 else { return (0, grad) }
    func unit(_ v: [Double], _ i: Int) -> (u: [Double], norm: Double) {
        let row = v[(i * h) ..< ((i + 1) * h)]
        let n = max(row.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return (row.map { $0 / n }, n)
    }
    let su = (0 ..< B).map { unit(s, $0) }, tu = (0 ..< B).map { unit(t, $0).u }
    func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    let pairs = Double(B * (B - 1))
    var loss = 0.0
    for i in 0 ..< B {
        // dL/d(unit s_i) = sum_{j != i} 2 * 2 (S_ij - T_ij) unit s_j / pairs (S_ij appears as ij and ji)
        var gu = [Double](repeating: 0, count: h)
        for j in 0 ..< B where j != i {
            let d = dot(su[i].u, su[j].u) - dot(tu[i], tu[j])
            loss += d * d / pairs
            let f = 4 * d / pairs
            for k in 0 ..< h { gu[k] += f * su[j].u[k] }
        }
        // through the normalization: (gu - (gu . u) u) / |s_i|
        let p = dot(gu, su[i].u)
        for k in 0 ..< h { grad[i * h + k] = (gu[k] - p * su[i].u[k]) / su[i].norm }
    }
    return (loss, grad)
}
