#!/usr/bin/env python3
"""Dependency checks that run offline, for scripts/deps-check.sh.

    deps_check.py advisories   Cargo.lock and fuzz/Cargo.lock against the
                               vendored RustSec snapshot in deps/advisory-db/
    deps_check.py fuzz-lock    fuzz/Cargo.lock holds no version of a crate
                               that Cargo.lock holds in another version
    deps_check.py duplicates   reads `cargo tree -d` output on stdin; every
                               crate built in two versions must be listed in
                               deps/duplicates.allow

Every allow-list entry needs a reason (`# why` on its line), and an entry
that no longer matches anything fails the check too, so the lists only
ever name real exceptions. Only the standard library (Python >= 3.11).
"""

import datetime
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
DB = ROOT / "deps" / "advisory-db"
LOCKS = [ROOT / "Cargo.lock", ROOT / "fuzz" / "Cargo.lock"]
# Past this age the check still passes, but says loudly that the data is old.
STALE_DAYS = 90


def fail(msg):
    print(f"FAIL: {msg}")
    return 1


def allow_list(path):
    """{entry: reason} of an allow-list file; a line without a reason is an error."""
    entries, errors = {}, []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry, _, reason = line.partition("#")
        if not reason.strip():
            errors.append(f"{path.relative_to(ROOT)}:{n}: '{entry.strip()}' has no reason (# why)")
        entries[entry.strip()] = reason.strip()
    return entries, errors


def lock_packages(path):
    """{(name, version)} of the crates.io packages of a Cargo.lock."""
    lock = tomllib.loads(path.read_text())
    return {
        (p["name"], p["version"])
        for p in lock.get("package", [])
        if p.get("source", "").startswith("registry+")
    }


# --- semver requirements, as Cargo reads them -------------------------------

def parse_version(text):
    core, _, pre = text.strip().partition("-")
    core = core.partition("+")[0]
    major, minor, patch = (int(x) for x in core.split("."))
    return (major, minor, patch, pre)


def version_key(v):
    major, minor, patch, pre = v
    # A pre-release sorts before its release; identifiers compare numerically
    # when both are numbers.
    ids = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in pre.split(".")) if pre else ()
    return (major, minor, patch, 0 if pre else 1, ids)


def comparator_bounds(comp):
    """(lower, lower_inclusive, upper, upper_inclusive) of one comparator; None is unbounded."""
    m = re.fullmatch(r"\s*(>=|<=|>|<|=|\^|~)?\s*([0-9*]+)(?:\.([0-9*]+))?(?:\.([0-9*]+))?(-[0-9A-Za-z.-]+)?(\+\S+)?\s*", comp)
    if not m:
        raise ValueError(f"cannot read requirement '{comp}'")
    op, major, minor, patch, pre = m.group(1) or "^", m.group(2), m.group(3), m.group(4), (m.group(5) or "")[1:]
    if major == "*":
        return (None, True, None, False)
    major = int(major)
    minor = None if minor in (None, "*") else int(minor)
    patch = None if patch in (None, "*") else int(patch)
    low = (major, minor or 0, patch or 0, pre)
    # The first version past the partial version given (1.2 → 1.3.0, 1 → 2.0.0).
    if minor is None:
        past = (major + 1, 0, 0, "")
    elif patch is None:
        past = (major, minor + 1, 0, "")
    else:
        past = (major, minor, patch + 1, "")
    if op == "=":
        return (low, True, past, False) if patch is None else (low, True, low, True)
    if op == ">=":
        return (low, True, None, False)
    if op == ">":
        return (past, True, None, False) if patch is None else (low, False, None, False)
    if op == "<":
        return (None, True, low, False)
    if op == "<=":
        return (None, True, past, False) if patch is None else (None, True, low, True)
    if op == "~":
        return (low, True, (major, minor + 1, 0, "") if minor is not None else (major + 1, 0, 0, ""), False)
    # Caret: the left-most non-zero part may not change.
    if major > 0 or minor is None:
        upper = (major + 1, 0, 0, "")
    elif minor > 0 or patch is None:
        upper = (0, minor + 1, 0, "")
    else:
        upper = (0, 0, patch + 1, "")
    return (low, True, upper, False)


def matches(req, version):
    v = version_key(version)
    for comp in req.split(","):
        low, low_inc, up, up_inc = comparator_bounds(comp)
        if low is not None and (v < version_key(low) or (v == version_key(low) and not low_inc)):
            return False
        if up is not None and (v > version_key(up) or (v == version_key(up) and not up_inc)):
            return False
    return True


def self_test():
    cases = [
        (">= 1.2.3", "1.2.3", True), (">= 1.2.3", "1.2.2", False),
        ("< 0.3", "0.2.9", True), ("< 0.3", "0.3.0", False),
        ("^0.5.1", "0.5.9", True), ("^0.5.1", "0.6.0", False), ("0.5.1", "0.5.0", False),
        ("^1.2", "1.9.0", True), ("^1.2", "2.0.0", False), ("^0.0.3", "0.0.4", False),
        (">= 1.0.0, < 1.4.1", "1.4.0", True), (">= 1.0.0, < 1.4.1", "1.4.1", False),
        ("<= 0.2", "0.2.7", True), ("<= 0.2", "0.3.0", False), ("> 1.2", "1.2.9", False),
        ("> 1.2", "1.3.0", True), ("=1.2.3", "1.2.4", False), ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False), (">= 1.0.0-alpha.1", "1.0.0-alpha.2", True),
        (">= 1.0.0-alpha.3", "1.0.0-alpha.2", False), ("< 2.0.0-rc.1", "1.9.9", True),
        ("*", "3.0.0", True),
    ]
    for req, version, want in cases:
        got = matches(req, parse_version(version))
        assert got == want, f"{req} vs {version}: {got}"


# --- the checks --------------------------------------------------------------

def advisory_meta(path):
    text = path.read_text()
    m = re.search(r"```toml\n(.*?)\n```", text, re.S)
    if not m:
        raise ValueError(f"{path}: no TOML front matter")
    data = tomllib.loads(m.group(1))
    title = re.search(r"^# (.+)$", text[m.end():], re.M)
    data["title"] = title.group(1).strip() if title else ""
    return data


def built(name, version):
    """Whether any target, feature or kind of edge of either workspace builds name@version."""
    for manifest in (ROOT / "Cargo.toml", ROOT / "fuzz" / "Cargo.toml"):
        out = subprocess.run(
            ["cargo", "tree", "--locked", "--quiet", "--manifest-path", str(manifest), "--workspace",
             "--target", "all", "-e", "all", "-i", f"{name}@{version}"],
            capture_output=True, text=True,
        )
        # cargo tree names a package the lock does not build "nothing to print"
        # (exit 0) or refuses the spec if that lock lacks it (exit 101).
        if out.returncode == 0 and out.stdout.strip():
            return True
    return False


def advisories():
    self_test()
    snapshot = tomllib.loads((DB / "SNAPSHOT.toml").read_text())
    taken = datetime.date.fromisoformat(str(snapshot["date"]))
    age = (datetime.date.today() - taken).days
    print(f"advisory data: RustSec advisory-db {snapshot['commit'][:12]} of {taken} ({age} days old)")
    if age > STALE_DAYS:
        print(f"WARNING: the advisory snapshot is over {STALE_DAYS} days old: run scripts/refresh-advisories.sh")
    covered = set(snapshot["crates"])
    allowed, errors = allow_list(ROOT / "deps" / "advisories.allow")
    status = 0
    for e in errors:
        status |= fail(e)
    packages = set()
    for lock in LOCKS:
        packages |= lock_packages(lock)
    missing = sorted({n for n, _ in packages} - covered)
    if missing:
        status |= fail(f"the advisory snapshot was not taken for {', '.join(missing)}: run scripts/refresh-advisories.sh")
    versions = {}
    for name, version in packages:
        versions.setdefault(name, []).append(version)
    seen = set()
    count = 0
    for path in sorted((DB / "crates").glob("*/*.md")):
        count += 1
        meta = advisory_meta(path)
        adv = meta["advisory"]
        if adv.get("withdrawn"):
            continue
        reqs = meta.get("versions", {}).get("patched", []) + meta.get("versions", {}).get("unaffected", [])
        for version in versions.get(adv["package"], []):
            if any(matches(r, parse_version(version)) for r in reqs):
                continue
            kind = adv.get("informational") or "vulnerability"
            what = f"{adv['id']} ({kind}) {adv['package']} {version}: {meta['title']}"
            if adv["id"] in allowed:
                seen.add(adv["id"])
                reason = allowed[adv["id"]]
                print(f"allowed: {what}\n  because: {reason}")
                if reason.startswith("not built") and built(adv["package"], version):
                    status |= fail(f"{adv['id']} is allowed as not built, but {adv['package']} {version} is built")
            else:
                status |= fail(f"{what}\n  patched: {', '.join(meta.get('versions', {}).get('patched', [])) or 'none'}")
    for stale in sorted(set(allowed) - seen):
        status |= fail(f"deps/advisories.allow names {stale}, which no longer applies: remove it")
    print(f"{len(packages)} crate versions checked against {count} advisories")
    return status


def fuzz_lock():
    root, fuzz = lock_packages(LOCKS[0]), lock_packages(LOCKS[1])
    root_versions = {}
    for name, version in root:
        root_versions.setdefault(name, set()).add(version)
    status = 0
    for name, version in sorted(fuzz):
        if name in root_versions and version not in root_versions[name]:
            status |= fail(
                f"fuzz/Cargo.lock has {name} {version}, Cargo.lock {', '.join(sorted(root_versions[name]))}: "
                "copy Cargo.lock to fuzz/Cargo.lock and let cargo re-resolve (docs/SECURITY.md)"
            )
    if not status:
        print(f"fuzz/Cargo.lock: {len(fuzz)} crates, none in a version the root lock lacks")
    return status


def duplicates():
    found = {}
    for line in sys.stdin:
        m = re.match(r"^([A-Za-z0-9_-]+) v(\S+)", line)
        if m:
            found.setdefault(m.group(1), set()).add(m.group(2))
    allowed, errors = allow_list(ROOT / "deps" / "duplicates.allow")
    status = 0
    for e in errors:
        status |= fail(e)
    for name, vs in sorted(found.items()):
        listing = ", ".join(sorted(vs))
        if name in allowed:
            print(f"allowed duplicate: {name} ({listing})\n  because: {allowed[name]}")
        else:
            status |= fail(f"{name} is built in several versions ({listing}): remove one or allow it in deps/duplicates.allow with the reason")
    for stale in sorted(set(allowed) - set(found)):
        status |= fail(f"deps/duplicates.allow names {stale}, which is no longer built twice: remove it")
    return status


if __name__ == "__main__":
    checks = {"advisories": advisories, "fuzz-lock": fuzz_lock, "duplicates": duplicates}
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(checks)}")
    sys.exit(checks[sys.argv[1]]())
