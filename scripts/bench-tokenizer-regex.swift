// Llama 3's pre-tokenizer pattern (as the runtime rewrites it) on a text, with ICU's
// NSRegularExpression and with the standard library's Regex (what the runtime now uses).
// Run: swiftc -O scripts/bench-tokenizer-regex.swift -o /tmp/rx && /tmp/rx Fixtures/text/eval-moby-dick.txt
import Foundation
let pat = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\p{White_Space}\p{L}\p{N}]+[\r\n]*|\p{White_Space}*[\r\n]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+"#
let text = try! String(contentsOfFile: CommandLine.arguments[1], encoding: .utf8)
let t0 = Date()
let ns = try! NSRegularExpression(pattern: pat)
let n1 = ns.numberOfMatches(in: text, range: NSRange(location: 0, length: (text as NSString).length))
let t1 = Date()
let rx = try! Regex(pat).matchingSemantics(.unicodeScalar)
var n2 = 0
for _ in text.matches(of: rx) { n2 += 1 }
let t2 = Date()
print("bytes \(text.utf8.count) NSRegularExpression \(n1) matches \(t1.timeIntervalSince(t0)) s; Regex \(n2) matches \(t2.timeIntervalSince(t1)) s")
