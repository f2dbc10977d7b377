#!/usr/bin/env python3
"""A fourth held-out text of another kind: 1987 newswire (Reuters-21578), built outside the repository.

The three evaluation texts in Fixtures/text are technical writing, a novel and a play. This script
makes a news text that nothing in the project has seen (not the calibration set, not the tuning text,
not any test), for checking that the figures measured on those three hold on writing of another kind.
The text is not committed (Reuters-21578 is distributed for research use); the script rebuilds it.

Source: the 70 Reuters-21578 articles (50 of topic `acq`, 20 of topic `crude`) that Debian's
**r-cran-tm 0.7-11-1** ships as `/usr/lib/R/site-library/tm/texts/{acq,crude}/reut-*.xml`
(`apt-get download r-cran-tm`). Each article becomes its title, then its body unwrapped to one line
per paragraph (the wire's indented lines start paragraphs), paragraphs separated by a blank line and
articles by two, as in the project's other texts (Fixtures/README.md);
`&lt;`, `&gt;`, `&amp;`, `&apos;`, `&quot;` decoded, the wire's trailing " Reuter" sign-off and the
`<...>` ticker brackets removed.

Usage: scripts/make_news_text.py OUT.txt [--deb r-cran-tm_*.deb | --dir EXTRACTED_ROOT]
(without either, it runs `apt-get download r-cran-tm=0.7-11-1` into a temporary directory). Prints the
sha256 of the text so that a report can name exactly what it measured.
"""
import argparse
import glob
import hashlib
import html
import os
import re
import subprocess
import sys
import tempfile

TEXTS = "usr/lib/R/site-library/tm/texts"
VERSION = "0.7-11-1"  # the package version the documented sha256 comes from


def article(xml):
    title = re.search(r"<TITLE>(.*?)</TITLE>", xml, re.S)
    body = re.search(r"<BODY>(.*?)</BODY>", xml, re.S)
    if body is None:
        return None
    paras, cur = [], []
    for line in body.group(1).split("\n"):
        if line.startswith("    ") and cur:  # an indented line starts a paragraph
            paras.append(" ".join(cur))
            cur = []
        if line.strip():
            cur.append(line.strip())
    if cur:
        paras.append(" ".join(cur))
    out = []
    for p in ([title.group(1)] if title else []) + paras:
        p = html.unescape(p)
        p = re.sub(r"\s+Reuter\s*$", "", p)
        p = p.replace("<", "").replace(">", "")
        p = re.sub(r"\s+", " ", p).strip()
        if p:
            out.append(p)
    return "\n\n".join(out)


def build(root):
    files = sorted(glob.glob(os.path.join(root, TEXTS, "acq", "reut-*.xml"))) + \
        sorted(glob.glob(os.path.join(root, TEXTS, "crude", "reut-*.xml")))
    if len(files) != 70:
        sys.exit(f"make_news_text: expected 70 articles under {os.path.join(root, TEXTS)}, found {len(files)}")
    arts = [a for a in (article(open(f, encoding="utf-8", errors="replace").read()) for f in files) if a]
    return "\n\n\n".join(arts) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--deb")
    ap.add_argument("--dir")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = a.dir
        if root is None:
            deb = a.deb
            if deb is None:
                subprocess.run(["apt-get", "download", "r-cran-tm=" + VERSION], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
                deb = glob.glob(os.path.join(tmp, "r-cran-tm_*.deb"))[0]
            root = os.path.join(tmp, "x")
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        text = build(root)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{a.out}: {len(text.encode())} bytes, sha256 {hashlib.sha256(text.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
