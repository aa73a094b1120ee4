"""Prints a hash of what a `docker build` / `buildah build` of this Dockerfile reads: the
Dockerfile, .dockerignore and every file of the build context .dockerignore lets through
(path, executable bit, content). runtime.sh keys the image's archive by it.

Usage: python3 context_hash.py CONTEXT_DIR [DOCKERFILE]

.dockerignore as docker reads it: one pattern a line, `#` comments, `*` `?` within a path
element, `**` across them, a leading `!` re-includes, the last matching line wins, and a
pattern that matches a directory matches everything in it. Character classes ([a-z]) are
not supported (the project's .dockerignore has none).
"""

import hashlib
import os
import re
import sys
from pathlib import Path


def compile_pattern(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def read_rules(context: Path) -> list[tuple[bool, str, re.Pattern[str]]]:
    """(re-include?, cleaned pattern, regex) per line of .dockerignore."""
    ignore = context / ".dockerignore"
    rules = []
    for line in ignore.read_text().splitlines() if ignore.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append((negate, pattern, compile_pattern(pattern)))
    return rules


def excluded(path: str, rules) -> bool:
    """Whether .dockerignore keeps `path` (relative, /-separated) out of the context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negate, _, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negate
    return result


def may_reinclude_below(directory: str, rules) -> bool:
    """Whether a `!` pattern could re-include something inside an excluded directory."""
    parts = directory.split("/")
    for negate, pattern, _ in rules:
        if not negate:
            continue
        elements = pattern.split("/")
        if "**" in pattern or all(compile_pattern(p).fullmatch(d) for p, d in zip(elements, parts)):
            return True
    return False


def main(context: Path, dockerfile: Path) -> str:
    rules = read_rules(context)
    digest = hashlib.sha256()
    for extra in (dockerfile, context / ".dockerignore"):
        digest.update(extra.read_bytes() if extra.exists() else b"")
    for root, dirs, files in os.walk(context):
        rel = Path(root).relative_to(context).as_posix()
        rel = "" if rel == "." else rel + "/"
        dirs[:] = sorted(d for d in dirs if not excluded(rel + d, rules) or may_reinclude_below(rel + d, rules))
        for name in sorted(files):
            path = Path(root) / name
            if excluded(rel + name, rules) or not path.is_file():
                continue
            executable = os.access(path, os.X_OK)
            digest.update(f"{rel}{name}\0{int(executable)}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


if __name__ == "__main__":
    context = Path(sys.argv[1])
    print(main(context, Path(sys.argv[2]) if len(sys.argv) > 2 else context / "Dockerfile"))
