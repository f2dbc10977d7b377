#!/usr/bin/env python3
"""Splits a text into sentences, one per line, for encoder evaluation (`compress verify` and
`edge-run embed` read one sentence per line).

Usage: python3 scripts/sentences.py TEXT [--max N] [--min-words 4] [--max-words 60] > sentences.txt

A sentence ends at '.', '!' or '?' followed by whitespace (or at a blank line); whitespace runs
become one space; sentences with fewer than --min-words or more than --max-words words are skipped;
duplicates are dropped (first kept). Only the standard library is used.
"""
import argparse
import re
import sys


def sentences(text):
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        for s in re.split(r"(?<=[.!?])\s+", para):
            s = s.strip()
            if s:
                yield s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text")
    ap.add_argument("--max", type=int, default=None, help="stop after this many sentences")
    ap.add_argument("--min-words", type=int, default=4)
    ap.add_argument("--max-words", type=int, default=60)
    a = ap.parse_args()
    with open(a.text, encoding="utf-8") as f:
        text = f.read()
    seen, n = set(), 0
    for s in sentences(text):
        w = len(s.split())
        if w < a.min_words or w > a.max_words or s in seen:
            continue
        seen.add(s)
        print(s)
        n += 1
        if a.max is not None and n >= a.max:
            break


if __name__ == "__main__":
    sys.exit(main())
