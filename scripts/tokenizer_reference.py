#!/usr/bin/env python3
"""Reference token ids for the Swift tokenizer tests (Tests/EdgeRuntimeTests/TokenizerTests.swift).

Usage (from the package root):
    python3 scripts/tokenizer_reference.py [--fixtures Fixtures] [--gguf SmolLM2.gguf] [--minilm tokenizer.json]
    python3 scripts/tokenizer_reference.py --minilm tokenizer.json --full-wordpiece-reference OUT.json

Not run in CI: the outputs are committed. Requirements: Python 3.11 and the PyPI packages
`tokenizers` (the reference implementation) and, only with --gguf, `gguf` (llama.cpp's gguf-py).

What it writes, under <fixtures>/tokenizer-reference/:
  * <name>-tokenizer.json  tokenizer.json documents made here:
      - smollm2: SmolLM2-135M's tokenizer rebuilt from the tokens/merges/token types stored in a
        SmolLM2 GGUF (only with --gguf; otherwise the committed file is used as is);
      - tiny-llama3: the tiny-llama vocabulary/merges with Llama-3's pre-tokenizer (Split with
        Llama-3's regex, Isolated, then ByteLevel without regex), "ignore_merges": true and merges
        written as "a b" strings;
      - tiny-mixed: tiny-llama with an NFC normalizer, Digits(individual_digits=false), Split
        with a string pattern and "MergedWithPrevious", ByteLevel(add_prefix_space=true) and extra
        added tokens using lstrip / rstrip / single_word / normalized;
      - tiny-split: the remaining Split behaviours (MergedWithNext, Contiguous, Removed, invert);
      - micro-unk: a 20-symbol vocabulary lacking most bytes, with unk_token and fuse_unk;
      - wordpiece: sentence-transformers/all-MiniLM-L6-v2's BERT tokenizer (BertNormalizer,
        BertPreTokenizer, WordPiece, TemplateProcessing [CLS] $A [SEP], WordPiece decoder) with its
        vocabulary trimmed to a few thousand entries (only with --minilm PATH, PATH being that
        model's tokenizer.json; otherwise the committed file is used as is).
  * <name>.json for every tokenizer above plus the fixture tokenizers tiny-gpt2 and tiny-llama:
      "tokenizer_json": path of the tokenizer.json relative to <fixtures>,
      "cases": [{"text", "ids", "decoded"}]   ids = encode(text, add_special_tokens=False),
                                               decoded = decode(ids, skip_special_tokens=False),
      "decode_cases": [{"ids", "decoded"}]     decoding of id sequences that split UTF-8 characters,
      "files": [{"path", "ids", "decoded_equals_text"}]  whole texts under <fixtures>/text/.
    For wordpiece, every case also has "ids_with_special" = encode(text, add_special_tokens=True)
    and "tokens"; decode_cases also have "decoded_skip" = decode(ids, skip_special_tokens=True).
    Truncation and padding of the document are turned off first (the Swift runtime ignores them).

--full-wordpiece-reference OUT.json writes the same reference for the full --minilm tokenizer.json
(30522 tokens; its "tokenizer_json" is the absolute path) and nothing else: it is not committed,
scripts/real-model.sh-style checks read it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TRICKY = [
    "hello  world",
    "a   b    c     d",
    "trailing spaces   ",
    "   ",
    " ",
    "\n",
    "\n\n\n",
    "line1\nline2\r\nline3\rline4\n\n  indented\n",
    "tabs\t\tand\t mixed \t\n whitespace \t",
    "x \n y  \n\n z",
    "12345",
    "1234567890123 and 3.14159, 1,000,000 and -42",
    "abc123def 456ghi 7",
    "Arabic-Indic \u0663\u0664\u0665, superscript \u00b2, fraction \u00bd, roman \u216b",
    "don't I'll we've they're she'd it's I'm",
    "DON'T I'LL WE'VE It'S",
    "'s 't 're 'x '",
    "café naïve résumé Straße ß ẞ Zürich",
    "cafe\u0301 (decomposed) vs caf\u00e9 (precomposed)",
    "中文字符 和 日本語 한국어 русский ελληνικά",
    "emoji 🚀🔥 👍🏽 👨‍👩‍👧 🇺🇸🇫🇷 ❤️",
    "nbsp\u00a0here, ideographic\u3000space, nel\u0085x, zwsp\u200bx, vt\x0bff\x0c, en\u2002space",
    "control \x00 chars \x01\x1f and del \x7f",
    "special <|endoftext|> inside<|endoftext|>text",
    "<|endoftext|><|endoftext|>",
    "   <|endoftext|>   ",
    "<|endoftext",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|im_start",
    "punctuation!!!??? ... --- ((())) [x] {y} \"q\" `code`",
    "$5.00 @user #tag 100% a&b a+b=c <html> </html>",
    "x",
    "",
    "supercalifragilisticexpialidocious" * 20,
    "a" * 300 + " " + "ab" * 150,
    "   leading and   inner   spaces",
    "mask <mask>  <mask>x [sep]   y [sep]z café cafés the café. cafe\u0301!",
    "thin th think other the three",
    "in-line re-enter co-operate a--b",
]

# Id sequences whose decoding cuts UTF-8 characters apart (lossy decoding must match HF's).
DECODE_TEXTS = ["é", "日本", "🚀", "a🚀b", "naïve"]


# WordPiece (BERT) cases: BertNormalizer (cleaning, CJK, accents, lowercase), BertPreTokenizer
# (whitespace and punctuation), WordPiece (greedy longest match, [UNK] words), special tokens in text.
WORDPIECE_CASES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you doing today?",
    "Sentence embeddings map text to dense vectors for semantic search and clustering.",
    "punctuation!!!??? ... --- ((())) [x] {y} \"q\" `code` a--b",
    "$5.00 @user #tag 100% a&b a+b=c <html> </html> ~tilde^caret|pipe\\back_slash",
    "don't I'll we've they're she'd it's I'm",
    "DON'T I'LL WE'VE It'S 'quoted' rock 'n' roll",
    "café naïve résumé Zürich façade",
    "Ångström",
    "CRÈME BRÛLÉE and Crème Brûlée",
    "cafe\u0301 (decomposed) vs caf\u00e9 (precomposed)",
    "İstanbul ΣΊΣΥΦΟΣ Straße ß ẞ",
    "Ελληνικά: καλημέρα κόσμε",
    "Русский текст: Привет, мир!",
    "中文字符",
    "日本語のテキスト",
    "한국어 텍스트",
    "mixed中文and English混合text",
    "emoji 🚀🔥 👍🏽 👨\u200d👩\u200d👧 🇺🇸 ❤️ 🥰",
    "control \x00 chars \x01\x1f del \x7f and \ufffd replacement",
    "tabs\tand\nnewlines\r\nand\rreturns",
    "nbsp\u00a0here, ideographic\u3000space, nel\u0085x, zwsp\u200bx, vt\x0bff\x0c, en\u2002space",
    "zero\u200dwidth\u200cjoiners",
    "supercalifragilisticexpialidocious",
    "x" * 150,
    "a" * 100 + " " + "b" * 101,
    "unknown \u2603snowman\u2603 and \U0001F9A0microbe word",
    "digits 0 12 345 6789 3.14159 1,000,000 -42 2nd 1e-5",
    "https://www.example.com/path?query=1&x=y#frag and user@example.org",
    "[CLS] and [MASK] written in text",
    "[CLS][SEP][PAD][UNK][MASK]",
    "[cls] lowercase is not special, [MASK]ed",
    "",
    "   ",
    " \t\n ",
    "   leading and   inner   spaces   ",
    "Unicode punctuation: «quotes» “curly” ‘single’ — dash – en … ellipsis ¿qué? ¡sí!",
    "math ∑ ∫ ≤ ≥ ± × ÷ and symbols © ® ™ ° § ¶",
    "Ⅻ ½ ² fullwidth ＡＢＣ１２３",
    "He said: \"I do not know.\" She didn't, did she?",
]

# Id sequences to decode (ids of these texts with add_special_tokens=True, reversed, single ids).
WORDPIECE_DECODE_TEXTS = [
    "Hello, world! How are you?",
    "don't I'm it's we've they're",
    "I do not know , really .",
    "supercalifragilisticexpialidocious unbelievable",
    "[MASK] café 中文",
]


def encode(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def decode(tok: Tokenizer, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=False)


# ---------------------------------------------------------------------------------------------
# tokenizer.json documents made here
# ---------------------------------------------------------------------------------------------

def smollm2_from_gguf(path: Path) -> dict:
    """SmolLM2's tokenizer.json rebuilt from a GGUF (tokenizer.ggml.model = gpt2, pre = smollm)."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(name):
        f = reader.fields.get(name)
        if f is None:
            sys.exit(f"{path}: GGUF has no {name}")
        return f

    def strings(name):
        f = field(name)
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    model = bytes(field("tokenizer.ggml.model").parts[-1]).decode()
    pre = bytes(field("tokenizer.ggml.pre").parts[-1]).decode()
    if model != "gpt2" or pre != "smollm":
        sys.exit(f"{path}: expected tokenizer.ggml.model gpt2 / pre smollm, got {model} / {pre}")
    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    f = field("tokenizer.ggml.token_type")
    types = [int(f.parts[i][0]) for i in f.data]
    control = int(gguf.TokenType.CONTROL)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, (t, ty) in enumerate(zip(tokens, types)) if ty == control]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": merges},
    }


def tiny_llama3(base: dict) -> dict:
    d = json.loads(json.dumps(base))
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    d["model"]["ignore_merges"] = True
    d["model"]["merges"] = [f"{a} {b}" for a, b in d["model"]["merges"]]
    d["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<|im_start|>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1],
                                                               "tokens": ["<|im_start|>"]}}}
    return d


def added(i: int, content: str, *, lstrip=False, rstrip=False, single_word=False, normalized=False,
          special=True) -> dict:
    return {"id": i, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def tiny_mixed(base: dict) -> dict:
    d = json.loads(json.dumps(base))
    n = len(d["model"]["vocab"])
    d["added_tokens"] += [added(n, "<mask>", lstrip=True), added(n + 1, "[sep]", rstrip=True),
                          added(n + 2, "café", single_word=True, normalized=True, special=False)]
    d["normalizer"] = {"type": "NFC"}
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": False},
        {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    return d


def tiny_split(base: dict) -> dict:
    d = json.loads(json.dumps(base))
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": " "}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[aeiou]+"}, "behavior": "Contiguous", "invert": True},
        {"type": "Split", "pattern": {"String": "th"}, "behavior": "Isolated", "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "Removed", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    return d


def micro_unk() -> dict:
    """Vocabulary without most bytes: unknown symbols become [UNK] (fused when adjacent)."""
    byte_level = bytes_to_unicode()
    symbols = [byte_level[b] for b in b" abehlnotw"]
    vocab = {"[UNK]": 0}
    for s in symbols:
        vocab[s] = len(vocab)
    merges = [("h", "e"), ("t", "he"), (byte_level[ord(" ")], "the"), ("l", "l"), ("e", "ll"), ("b", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "[UNK]")],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": [list(m) for m in merges]},
    }


def wordpiece_trimmed(full: dict) -> dict:
    """The MiniLM document with its vocabulary cut down: the special tokens, every single character
    and its ## form, the tokens the full vocabulary gives for the cases and the reference texts, and
    the 1500 first ordinary words; original order kept, ids renumbered densely, [unused*] dropped."""
    vocab: dict[str, int] = full["model"]["vocab"]
    full_tok = Tokenizer.from_str(json.dumps(full))
    full_tok.no_truncation()
    full_tok.no_padding()
    keep = {t for t in vocab if len(t) == 1 or (t.startswith("##") and len(t) == 3)}
    keep |= {a["content"] for a in full["added_tokens"]}
    texts = WORDPIECE_CASES + WORDPIECE_DECODE_TEXTS
    for text in texts:
        keep |= set(full_tok.encode(text, add_special_tokens=False).tokens)
    by_id = sorted(vocab, key=vocab.get)
    words = [t for t in by_id if t.isalpha() and t.isascii() and len(t) > 1 and not t.startswith("[")]
    keep |= set(words[:1500])
    kept = [t for t in by_id if t in keep and not t.startswith("[unused")]
    new_id = {t: i for i, t in enumerate(kept)}
    d = json.loads(json.dumps(full))
    d["model"]["vocab"] = new_id
    for a in d["added_tokens"]:
        a["id"] = new_id[a["content"]]
    for entry in d["post_processor"]["special_tokens"].values():
        entry["ids"] = [new_id[t] for t in entry["tokens"]]
    if d.get("padding"):
        d["padding"]["pad_id"] = new_id[d["padding"]["pad_token"]]
    return d


def wordpiece_reference(tok: Tokenizer, rel_json: str, fixtures: Path | None) -> dict:
    tok.no_truncation()
    tok.no_padding()
    cases = []
    for text in WORDPIECE_CASES:
        enc = tok.encode(text, add_special_tokens=False)
        cases.append({"text": text, "ids": enc.ids, "tokens": enc.tokens,
                      "ids_with_special": tok.encode(text, add_special_tokens=True).ids,
                      "decoded": decode(tok, enc.ids)})
    decode_cases = []
    for text in WORDPIECE_DECODE_TEXTS:
        ids = tok.encode(text, add_special_tokens=True).ids
        for seq in (ids, ids[1:-1], ids[::-1], ids[2:], [ids[1]], [ids[-2]]):
            decode_cases.append({"ids": seq, "decoded": decode(tok, seq),
                                 "decoded_skip": tok.decode(seq, skip_special_tokens=True)})
    files = []
    if fixtures is not None:
        for name in ("us-constitution.txt",):
            text = (fixtures / "text" / name).read_text(encoding="utf-8")
            ids = encode(tok, text)
            files.append({"path": f"text/{name}", "ids": ids, "decoded_equals_text": decode(tok, ids) == text})
    return {
        "description": "Ids from the HF `tokenizers` library (version "
                       f"{tokenizers.__version__}), truncation and padding off: "
                       "encode(text, add_special_tokens=False) (ids, tokens) and add_special_tokens=True "
                       "(ids_with_special); decode(ids, skip_special_tokens=False) (decoded) and True "
                       "(decoded_skip). Written by scripts/tokenizer_reference.py.",
        "tokenizer_json": rel_json,
        "cases": cases,
        "decode_cases": decode_cases,
        "files": files,
    }


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# ---------------------------------------------------------------------------------------------
# reference ids
# ---------------------------------------------------------------------------------------------

def write_json(path: Path, doc: dict, compact: bool) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        if compact:
            json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


def reference(tok: Tokenizer, rel_json: str, fixtures: Path) -> dict:
    cases = []
    for text in TRICKY:
        ids = encode(tok, text)
        cases.append({"text": text, "ids": ids, "decoded": decode(tok, ids)})
    decode_cases = []
    for text in DECODE_TEXTS:
        ids = encode(tok, text)
        for i in range(len(ids)):       # every prefix, then each id alone
            decode_cases.append({"ids": ids[: i + 1], "decoded": decode(tok, ids[: i + 1])})
            decode_cases.append({"ids": [ids[i]], "decoded": decode(tok, [ids[i]])})
        decode_cases.append({"ids": ids[::-1], "decoded": decode(tok, ids[::-1])})
    files = []
    for p in sorted((fixtures / "text").glob("*.txt")):
        if p.name != "us-constitution.txt":
            continue
        text = p.read_text(encoding="utf-8")
        ids = encode(tok, text)
        files.append({"path": f"text/{p.name}", "ids": ids, "decoded_equals_text": decode(tok, ids) == text})
    return {
        "description": "Ids from the HF `tokenizers` library (version "
                       f"{tokenizers.__version__}): encode(text, add_special_tokens=False) and "
                       "decode(ids, skip_special_tokens=False). Written by scripts/tokenizer_reference.py.",
        "tokenizer_json": rel_json,
        "cases": cases,
        "decode_cases": decode_cases,
        "files": files,
    }


def dump_reference(doc: dict, path: Path) -> None:
    """One case per line: readable diffs without one line per id."""
    lines = ["{"]
    for key in ("description", "tokenizer_json"):
        lines.append(f" {json.dumps(key)}: {json.dumps(doc[key], ensure_ascii=False)},")
    for key in ("cases", "decode_cases", "files"):
        lines.append(f" {json.dumps(key)}: [")
        items = [" " + json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in doc[key]]
        lines.append(",\n".join(items))
        lines.append(" ]," if key != "files" else " ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    json.loads(path.read_text(encoding="utf-8"))  # well-formed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", type=Path, default=Path("Fixtures"))
    ap.add_argument("--gguf", type=Path, help="a SmolLM2 GGUF to (re)build smollm2-tokenizer.json from")
    ap.add_argument("--minilm", type=Path,
                    help="all-MiniLM-L6-v2's tokenizer.json, to (re)build wordpiece-tokenizer.json from")
    ap.add_argument("--full-wordpiece-reference", type=Path, metavar="OUT",
                    help="only write the reference ids of the full --minilm tokenizer to OUT")
    args = ap.parse_args()
    fx: Path = args.fixtures
    out = fx / "tokenizer-reference"

    if args.full_wordpiece_reference:
        if not args.minilm:
            sys.exit("--full-wordpiece-reference needs --minilm PATH")
        path = args.minilm.resolve()
        doc = wordpiece_reference(Tokenizer.from_file(str(path)), str(path), fx if fx.exists() else None)
        dump_reference(doc, args.full_wordpiece_reference)
        print(f"wrote {args.full_wordpiece_reference}")
        return

    out.mkdir(parents=True, exist_ok=True)

    base = json.loads((fx / "tiny-llama" / "tokenizer.json").read_text(encoding="utf-8"))
    made = {"tiny-llama3": tiny_llama3(base), "tiny-mixed": tiny_mixed(base), "tiny-split": tiny_split(base),
            "micro-unk": micro_unk()}
    if args.gguf:
        made["smollm2"] = smollm2_from_gguf(args.gguf)
    if args.minilm:
        made["wordpiece"] = wordpiece_trimmed(json.loads(args.minilm.read_text(encoding="utf-8")))
    for name, doc in made.items():
        write_json(out / f"{name}-tokenizer.json", doc, compact=(name == "smollm2"))

    sources = {"tiny-gpt2": "tiny-gpt2/tokenizer.json", "tiny-llama": "tiny-llama/tokenizer.json"}
    for name in ("tiny-llama3", "tiny-mixed", "tiny-split", "micro-unk", "smollm2"):
        sources[name] = f"tokenizer-reference/{name}-tokenizer.json"
    for name, rel in sources.items():
        path = fx / rel
        if not path.exists():
            sys.exit(f"{path} is missing (smollm2: pass --gguf to build it)")
        tok = Tokenizer.from_file(str(path))
        dump_reference(reference(tok, rel, fx), out / f"{name}.json")
        print(f"wrote {out / (name + '.json')}")
    rel = "tokenizer-reference/wordpiece-tokenizer.json"
    if not (fx / rel).exists():
        sys.exit(f"{fx / rel} is missing (pass --minilm to build it)")
    dump_reference(wordpiece_reference(Tokenizer.from_file(str(fx / rel)), rel, fx), out / "wordpiece.json")
    print(f"wrote {out / 'wordpiece.json'}")


if __name__ == "__main__":
    main()
