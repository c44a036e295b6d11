#!/usr/bin/env python3
"""Cuts a test fixture out of GitHub's public REST API description (npm package
@octokit/openapi, MIT licence): every operation under the given path prefixes, with
every component they reach through $ref, unchanged; `examples` are dropped (they are
documentation, never validated).

    npm pack @octokit/openapi@23.0.2 && tar xzf octokit-openapi-23.0.2.tgz
    python3 scripts/github-openapi-subset.py package/generated/api.github.com.json \
        crates/rampart/tests/data/github-subset.json
"""
import json
import sys

PREFIXES = (
    "/repos/{owner}/{repo}/issues",
    "/repos/{owner}/{repo}/pulls",
    "/repos/{owner}/{repo}/compare",
    "/repos/{owner}/{repo}/labels",
    "/repos/{owner}/{repo}/milestones",
    "/gists",
    "/user",
)


def refs(node, out):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            out.add(r)
        for k, v in node.items():
            if k not in ("examples", "example"):
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def strip_examples(node):
    if isinstance(node, dict):
        return {k: strip_examples(v) for k, v in node.items() if k not in ("examples", "example")}
    if isinstance(node, list):
        return [strip_examples(v) for v in node]
    return node


def main(src, dst):
    doc = json.load(open(src))
    paths = {p: v for p, v in doc["paths"].items() if p.startswith(PREFIXES)}
    keep = {}
    todo = set()
    refs(paths, todo)
    while todo:
        r = todo.pop()
        _, kind, name = r.lstrip("#/").split("/", 2)
        if (kind, name) in keep:
            continue
        node = doc["components"][kind][name]
        keep[(kind, name)] = node
        refs(node, todo)
    components = {}
    for (kind, name), node in sorted(keep.items()):
        components.setdefault(kind, {})[name] = strip_examples(node)
    out = {
        "openapi": doc["openapi"],
        "info": doc["info"],
        "servers": doc.get("servers", []),
        "paths": strip_examples(paths),
        "components": components,
    }
    json.dump(out, open(dst, "w"), separators=(",", ":"), sort_keys=True)
    ops = sum(1 for p in paths.values() for m in p if m in ("get", "put", "post", "patch", "delete"))
    print(f"{len(paths)} paths, {ops} operations, {len(keep)} components", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
