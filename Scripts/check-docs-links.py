#!/usr/bin/env python3
"""Checks that the documents hold together. Python 3 standard library only.

1. Every relative link in the Markdown files of README.md, docs/, Protocol/ and
   Deploy/ points to a file or folder that exists inside the repository, and a
   link to a heading of a Markdown file (`file.md#anchor`, `#anchor`) finds that
   heading (GitHub's anchors) or an explicit `<a id="…">`.
2. Every rule id (`R-` + three capitals + `-` + a number) used in README.md,
   docs/, Protocol/, Deploy/, Scripts/, Sources/ or Tests/ is defined in
   docs/rules.md (as a bold lead: `**R-ENV-1**`).

Prints one `ok` line when everything holds; otherwise lists each problem and
exits 1. Usage: python3 Scripts/check-docs-links.py [REPOSITORY]
"""

import os
import re
import sys
import unicodedata
from urllib.parse import unquote

ROOT = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
LINK_ROOTS = ["README.md", "docs", "Protocol", "Deploy"]
ID_ROOTS = ["README.md", "docs", "Protocol", "Deploy", "Scripts", "Sources", "Tests"]
RULES = os.path.join(ROOT, "docs", "rules.md")
SKIP_DIRS = {".build", ".git", ".swiftpm", ".portier", "__pycache__"}

RULE_ID = re.compile(r"R-[A-Z]{3}-[0-9]+")
RULE_DEFINITION = re.compile(r"\*\*(R-[A-Z]{3}-[0-9]+)\*\*")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^()\s]+(?:\([^()\s]*\))?)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def files_under(roots):
    for root in roots:
        path = os.path.join(ROOT, root)
        if os.path.isfile(path):
            yield path
        elif os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".build"))
                for name in sorted(names):
                    yield os.path.join(folder, name)


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def relative(path):
    return os.path.relpath(path, ROOT)


def prose_lines(text, keep_code=False):
    """(line number, line) outside fenced code blocks; inline code removed
    unless `keep_code` (headings keep it: it is part of their anchor)."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        yield number, line if keep_code else re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)                          # inline HTML
    text = text.replace("`", "").lower()
    kept = []
    for ch in text:
        if ch in " -_" or unicodedata.category(ch)[0] in "LN":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


anchor_cache = {}


def anchors(path):
    if path not in anchor_cache:
        found, counts = set(), {}
        text = read_text(path)
        for _, line in prose_lines(text, keep_code=True):
            match = HEADING.match(line)
            if match:
                base = slug(match.group(2))
                n = counts.get(base, 0)
                counts[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
        for match in EXPLICIT_ANCHOR.finditer(text):
            found.add(match.group(1))
            found.add(match.group(1).lower())
        anchor_cache[path] = found
    return anchor_cache[path]


def check_links(problems):
    for path in files_under(LINK_ROOTS):
        if not path.endswith(".md"):
            continue
        text = read_text(path)
        for number, line in prose_lines(text):
            targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
            definition = REFERENCE_DEFINITION.match(line)
            if definition:
                targets.append(definition.group(1))
            for raw in targets:
                target = raw[1:-1] if raw.startswith("<") and raw.endswith(">") else raw
                if not target or SCHEME.match(target) or target.startswith("//"):
                    continue  # a web address: not checked here
                where = f"{relative(path)}:{number}"
                file_part, _, fragment = target.partition("#")
                file_part = unquote(file_part)
                if file_part.startswith("/"):
                    resolved = os.path.realpath(os.path.join(ROOT, file_part.lstrip("/")))
                elif file_part:
                    resolved = os.path.realpath(os.path.join(os.path.dirname(path), file_part))
                else:
                    resolved = path
                if resolved != ROOT and not resolved.startswith(ROOT + os.sep):
                    problems.append(f"{where}: link to {target} points outside the repository")
                    continue
                if not os.path.exists(resolved):
                    problems.append(f"{where}: link to {target}: no such file ({relative(resolved)})")
                    continue
                if fragment and resolved.endswith(".md") and os.path.isfile(resolved):
                    anchor = unquote(fragment)
                    if anchor not in anchors(resolved) and anchor.lower() not in anchors(resolved):
                        problems.append(f"{where}: link to {target}: {relative(resolved)} has no heading or anchor #{anchor}")


def check_rule_ids(problems):
    if not os.path.isfile(RULES):
        problems.append("docs/rules.md is missing: rule ids cannot be checked")
        return
    defined = set(RULE_DEFINITION.findall(read_text(RULES)))
    used = {}
    for path in files_under(ID_ROOTS):
        for number, line in enumerate(read_text(path).splitlines(), 1):
            for rule in RULE_ID.findall(line):
                used.setdefault(rule, f"{relative(path)}:{number}")
    for rule in sorted(set(used) - defined):
        problems.append(f"{used[rule]}: {rule} is not defined in docs/rules.md")


def main():
    problems = []
    check_links(problems)
    check_rule_ids(problems)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s) in the documents", file=sys.stderr)
        return 1
    print("ok: links in README.md, docs/, Protocol/, Deploy/ resolve; every rule id is defined in docs/rules.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
