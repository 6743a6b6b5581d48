#!/usr/bin/env python3
"""Finds import cycles between sibling modules of each crate (issue #17: "no import cycles").

A module `a` depends on its sibling `b` when code anywhere under `a` names a path under `b`
(`use crate::x::b::..`, `super::b::..`, `crate::x::b::..` in an expression). Parents and children
are not cycles (a parent declares its children; a child may use its parent's items). Test code
(`tests.rs`, `*_tests.rs`, and everything after a `#[cfg(test)]` line) is left out: tests may reach
anywhere. Prints each cycle and exits 1 when there is one.

Usage: scripts/module-cycles.py [CRATE_DIR ...]   (default: every workspace crate with a src/)
"""
import os
import re
import sys

PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\}", re.S)


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    if rel and rel[0] == "bin":
        return None
    return tuple(rel)


def non_test_code(text):
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def resolve(here, head, rest):
    base = list(here) if head != "crate" else []
    parts = rest.strip(":").split("::")
    if head == "super":
        base = base[:-1]
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
    return tuple(base + [p for p in parts if p])


def deps_of(src):
    modules = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs") or f == "tests.rs" or f.endswith("_tests.rs"):
                continue
            path = os.path.join(root, f)
            mod = module_path(src, path)
            if mod is None:
                continue
            modules[mod] = non_test_code(open(path, encoding="utf-8").read())
    known = set(modules)
    edges = set()
    for mod, text in modules.items():
        refs = [resolve(mod, h, r) for h, r in PATH_RE.findall(text)]
        for head, prefix, group in USE_GROUP_RE.findall(text):
            for item in re.split(r"[,\s]+", re.sub(r"\{[^}]*\}", "", group)):
                item = item.split(" as ")[0].strip()
                if item and item != "self":
                    refs.append(resolve(mod, head, prefix + "::" + item))
        for target in refs:
            while target and target not in known:
                target = target[:-1]
            if not target or target == mod:
                continue
            common = 0
            while common < min(len(mod), len(target)) and mod[common] == target[common]:
                common += 1
            if common == len(mod) or common == len(target):
                continue  # ancestor or descendant
            edges.add((mod[: common + 1], target[: common + 1]))
    return edges


def cycles(edges):
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    crates = sys.argv[1:] or sorted(
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "src")) and d != "target"
    )
    found = 0
    for crate in crates:
        for comp in cycles(deps_of(os.path.join(root, crate, "src"))):
            found += 1
            print(f"{crate}: cycle between " + ", ".join("::".join(m) for m in comp))
    if found:
        sys.exit(1)
    print("no module cycles")


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
