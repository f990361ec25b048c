"""The Dockerfile and .dockerignore against the programs and the project (hadolint,
from tests/deploy/validate, lints the Dockerfile itself): the runtime stage installs a
package for every shared library the built programs link, builds and installs every
program, keeps the migrations and the console where the programs look for them, carries
the project's version, probes /readyz; the build context holds what the build copies and
nothing of the build directories, the local stack or the tests."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from pathlib import Path
from typing import Any

from programs import PROGRAMS, Programs
from report import R, run

# Where the image keeps the migrations and the console's files: the programs' compiled-in
# defaults for a build in /usr/share/mailhook with prefix /usr.
IMAGE_MIGRATIONS_DIR = "/usr/share/mailhook/migrations"
IMAGE_CONSOLE_DIR = "/usr/share/mailhook/console"


def stages(text: str) -> list[dict[str, Any]]:
    """[{name, ins: [(INSTRUCTION, arguments)]}] of each stage, continuation lines joined."""
    out: list[dict[str, Any]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("#") or (not buf and not line.strip()):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        word, _, rest = (buf + line).strip().partition(" ")
        buf = ""
        if word.upper() == "FROM":
            out.append({"name": rest.split()[-1], "ins": []})
        elif out:
            out[-1]["ins"].append((word.upper(), rest.strip()))
    return out


def apt_packages(run_args: str) -> set[str]:
    return {w for m in re.finditer(r"apt-get install ([^&;|]*)", run_args)
            for w in m.group(1).split() if not w.startswith("-")}


def library_packages(binary: Path) -> dict[str, str]:
    """{soname: Debian package} of the binary's direct dependencies on this machine."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", str(binary)]).stdout)
    ldcache = run(["ldconfig", "-p"]).stdout
    found = {}
    for so in needed:
        m = re.search(rf"^\s*{re.escape(so)} \(([^)]*)\) => (\S+)$", ldcache, re.M)
        # dpkg knows a file by the path its package ships (/lib or /usr/lib).
        paths = list(dict.fromkeys([m.group(2), os.path.realpath(m.group(2))])) if m else []
        owners = [ln.split(":")[0] for ln in run(["dpkg", "-S", *paths]).stdout.splitlines()] if paths else []
        found[so] = owners[0] if owners else "? (not in the linker cache or dpkg)"
    return found


def dockerignore_excluded(patterns: list[tuple[str, bool]], rel: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]

    def matches(pat: str, path: str) -> bool:
        if "**" in pat:
            return fnmatch.fnmatchcase(path, pat) or (pat.endswith("/**") and path.startswith(pat[:-3] + "/"))
        return pat.count("/") == path.count("/") and fnmatch.fnmatchcase(path, pat)

    excluded = False
    for pat, negated in patterns:
        if any(matches(pat, c) for c in candidates):
            excluded = not negated
    return excluded


def check_image(root: Path, progs: Programs, version: str) -> None:
    st = stages((root / "Dockerfile").read_text())
    if len(st) < 2:
        R.fail("image: stages", "want a build stage and a runtime stage")
        return
    build, final = st[0], st[-1]

    def args(stage: dict[str, Any], kind: str) -> list[str]:
        return [rest for w, rest in stage["ins"] if w == kind]

    runtime_pkgs = set().union(*(apt_packages(r) for r in args(final, "RUN")))
    if shutil.which("readelf") and shutil.which("dpkg"):
        problems, notes = [], set()
        for p in PROGRAMS:
            for so, pkg in library_packages(progs.path(p)).items():
                if re.match(r"lib(a|ub|t|l)san", so):
                    notes.add(f"{so} (sanitizer build) ignored")
                elif pkg not in runtime_pkgs and pkg != "libc6":
                    problems.append(f"{p} links {so} from {pkg}, which the runtime stage does not install")
        R.check("image: runtime libraries", problems, "every NEEDED library of the built programs is "
                "installed" + (f" ({'; '.join(sorted(notes))})" if notes else ""))
    else:
        R.skip("image: runtime libraries", "readelf or dpkg missing")

    build_run = " ".join(args(build, "RUN"))
    copies = " | ".join(args(final, "COPY"))
    problems = []
    for p in PROGRAMS:
        if not re.search(rf"--target[^&]*\b{re.escape(p)}(\s|$)", build_run):
            problems.append(f"the build stage does not build {p}")
        if not re.search(rf"/{re.escape(p)}(\s|$)", build_run):
            problems.append(f"the build stage does not install {p}")
    if "/usr/local/bin" not in copies:
        problems.append("the runtime stage copies no programs to /usr/local/bin")
    workdir = (args(build, "WORKDIR") or [""])[-1].rstrip("/")
    if f"{workdir}/migrations" != IMAGE_MIGRATIONS_DIR:
        problems.append(f"build WORKDIR {workdir}: the compiled-in migrations_dir would be "
                        f"{workdir}/migrations, not {IMAGE_MIGRATIONS_DIR}")
    if not re.search(rf"migrations/?\s+{re.escape(IMAGE_MIGRATIONS_DIR)}/?(\s*\||$)", copies):
        problems.append(f"the runtime stage does not copy migrations/ to {IMAGE_MIGRATIONS_DIR}")
    prefix = re.search(r"-DCMAKE_INSTALL_PREFIX=(\S+)", build_run)
    if not prefix or prefix.group(1).rstrip("/") + "/share/mailhook/console" != IMAGE_CONSOLE_DIR:
        problems.append(f"the build's install prefix is not /usr: mailhook-api would not look in {IMAGE_CONSOLE_DIR}")
    if not re.search(rf"api/console/?\s+{re.escape(IMAGE_CONSOLE_DIR)}/?(\s*\||$)", copies):
        problems.append(f"the runtime stage does not copy api/console/ to {IMAGE_CONSOLE_DIR}")
    label = next((r.split("=", 1)[1] for r in args(final, "ARG") if r.startswith("MAILHOOK_VERSION=")), None)
    if label != version:
        problems.append(f"ARG MAILHOOK_VERSION={label}, CMakeLists.txt says {version}")
    hc = (args(final, "HEALTHCHECK") or [""])[-1]
    if "/readyz" not in hc:
        problems.append("HEALTHCHECK does not probe /readyz")
    if not args(final, "USER"):
        problems.append("runtime stage has no USER")
    R.check("image: programs and paths", problems,
            f"{', '.join(PROGRAMS)} built and installed; {IMAGE_MIGRATIONS_DIR}, {IMAGE_CONSOLE_DIR}; "
            f"version {version}; HEALTHCHECK on /readyz; USER")

    # Build context: everything the Dockerfile copies, none of the local state.
    di = root / ".dockerignore"
    patterns = []
    for raw in (di.read_text().splitlines() if di.exists() else []):
        line = raw.strip()
        if line and not line.startswith("#"):
            patterns.append((os.path.normpath(line.lstrip("!").strip()).lstrip("/"), line.startswith("!")))
    sources = [src for stage in st for w, rest in stage["ins"] if w == "COPY" and "--from" not in rest
               for src in rest.split()[:-1]]
    problems = []
    for src in sources:
        base = root / src
        files = [base] if base.is_file() else [f for f in base.rglob("*") if f.is_file()]
        if not files:
            problems.append(f"COPY {src}: nothing there")
        bad = next((f for f in files if dockerignore_excluded(patterns, f.relative_to(root).as_posix())), None)
        if bad:
            problems.append(f"{bad.relative_to(root)} is copied by the Dockerfile but excluded by .dockerignore")
    for entry in sorted(root.iterdir()):
        if entry.name == ".git" or entry.name.startswith((".local", "build")) or entry.name in ("tests", "deploy"):
            if not dockerignore_excluded(patterns, f"{entry.name}/x" if entry.is_dir() else entry.name):
                problems.append(f"{entry.name} is part of the build context")
    R.check("image: .dockerignore", problems, f"context = {', '.join(sources)}")
