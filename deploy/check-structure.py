#!/usr/bin/env python3
"""Checks the shape the codebase keeps so that it stays easy to change:

- no production source file over 600 lines (unit-test files `*tests.rs`, the generated
  `schema.rs` and the `tests` package aside);
- no function (or macro body) over 120 lines outside test modules;
- no cycle between the files of a package (`use crate::…`, `super::…`, `self::…`).

usage: deploy/check-structure.py [--list N]   (run from anywhere in the repository)
  --list N   also print the N largest files and functions
Exits 1 naming each breach.
"""
import os
import re
import sys

MAX_FILE_LINES = 600
MAX_FN_LINES = 120
PACKAGES = ["common", "api", "tko", "scheduler", "drone-worker", "atest", "tools"]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

FN = re.compile(
    r"^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?fn\s+(\w+)|^\s*macro_rules!\s*(\w+)"
)


def sources(package):
    src = os.path.join(ROOT, package, "src")
    for folder, _, files in os.walk(src):
        for name in sorted(files):
            if name.endswith(".rs"):
                yield src, os.path.join(folder, name)


def production_part(text):
    """The file up to its `#[cfg(test)]` module, if any."""
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def functions(path, text):
    lines = production_part(text).split("\n")
    for start, line in enumerate(lines):
        match = FN.match(line)
        if not match:
            continue
        depth, opened, end = 0, False, start
        for end in range(start, len(lines)):
            for ch in lines[end]:
                if ch == "{":
                    depth, opened = depth + 1, True
                elif ch == "}":
                    depth -= 1
            if opened and depth <= 0:
                break
            if not opened and lines[end].rstrip().endswith(";"):
                break
        yield end - start + 1, f"{os.path.relpath(path, ROOT)}:{start + 1} {match.group(5) or match.group(6)}"


def module_of(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


REFERENCE = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
GROUP = re.compile(r"\b(crate|super)::((?:\w+::)*)\{([^}]*)\}", re.S)


def module_graph(package):
    files = {}
    for src, path in sources(package):
        module = module_of(src, path)
        if module and module[0] == "bin":
            continue
        files[module] = path
    edges = {module: set() for module in files}

    def resolve(parts):
        for n in range(len(parts), -1, -1):
            if tuple(parts[:n]) in files:
                return tuple(parts[:n])
        return None

    for module, path in files.items():
        text = production_part(open(path, encoding="utf-8").read())
        is_dir = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")

        def base(kind):
            if kind == "crate":
                return []
            if kind == "self":
                return list(module)
            return list(module[:-1]) if is_dir else list(module[:-2])

        targets = [base(k) + rest.strip(":").split("::") for k, rest in REFERENCE.findall(text)]
        for kind, prefix, items in GROUP.findall(text):
            prefix = [p for p in prefix.split("::") if p]
            for item in items.split(","):
                item = item.strip().split(" ")[0].split("::")
                targets.append(base(kind) + prefix + ([] if item[0] in ("self", "") else item))
        for target in targets:
            found = resolve(target)
            inside = len(found or ()) < len(module) and module[: len(found or ())] == found
            if found is not None and found != module and not inside:
                edges[module].add(found)
    return edges


def cycles(edges):
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted("::".join(m) or "crate" for m in component))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


def main():
    listing = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--list" else 0
    breaches, file_sizes, fn_sizes = [], [], []
    for package in PACKAGES:
        for _, path in sources(package):
            name = os.path.basename(path)
            text = open(path, encoding="utf-8").read()
            if not (name.endswith("tests.rs") or name == "schema.rs"):
                file_sizes.append((text.count("\n"), os.path.relpath(path, ROOT)))
            fn_sizes.extend(functions(path, text))
        for cycle in cycles(module_graph(package)):
            breaches.append(f"{package}: module cycle {' <-> '.join(cycle)}")
    breaches += [f"{p}: {n} lines (limit {MAX_FILE_LINES})" for n, p in file_sizes if n > MAX_FILE_LINES]
    breaches += [f"{w}: {n} lines (limit {MAX_FN_LINES})" for n, w in fn_sizes if n > MAX_FN_LINES]
    if listing:
        print("largest files:")
        for n, p in sorted(file_sizes, reverse=True)[:listing]:
            print(f"  {n:5d} {p}")
        print("largest functions:")
        for n, w in sorted(fn_sizes, reverse=True)[:listing]:
            print(f"  {n:5d} {w}")
    for breach in breaches:
        print(f"structure: {breach}")
    if breaches:
        return 1
    print(f"structure: ok ({len(file_sizes)} files, {len(fn_sizes)} functions, no module cycle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
