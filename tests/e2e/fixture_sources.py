"""The source each provider's fixtures are configured as: tests/fixtures/<provider>/source.ini.

One file per fixtures folder describes the [source.<name>] block that both the golden
end-to-end tests (test_providers_golden.py and test_unsigned_requests.py, through
provider_sources.py; tenant "test") and the local stack (deploy/local/lib.sh, tenant
"local") write for that provider:

    [source]   provider (the folder's name) and the options both write
    [golden]   options only the golden test writes, or writes differently
    [local]    options only the local stack writes, or writes differently; the key
               `name` there is the local source's name when it is not the folder's
               (the hmac provider's local source is "maildog")

tenant is never in the file: this reader sets it (TENANTS). A value that starts with
"@" is a placeholder for something made per run or per machine (PLACEHOLDERS); each
reader resolves it with its own key and secret helpers, so no secret is ever in the
file. The files are read with configparser; docs/providers/README.md documents them.

Run as a program (deploy/local/lib.sh does, with python3):

    fixture_sources.py local|golden

prints one line per key, NAME<TAB>KEY<TAB>VALUE, sources in the order of
shared/providers/providers.def, provider and tenant first, placeholders unresolved.
Exit status 1 with a message on stderr when a file is missing or wrong.
"""

from __future__ import annotations

import configparser
import dataclasses
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PROVIDER_LIST = ROOT / "shared" / "providers" / "providers.def"

# Who writes the sources, and the tenant each gives them.
TENANTS = {"golden": "test", "local": "local"}

# The placeholder vocabulary: "@<name>" as a whole value. Keep in step with
# docs/providers/README.md, provider_sources.py's resolvers and mh_source_value in
# deploy/local/lib.sh.
PLACEHOLDERS = {
    "secret": "a new random secret: 32 random bytes, hex",
    "whsec_secret": "a new Standard Webhooks (Svix) secret: \"whsec_\" and the base64 of "
                    "32 random bytes",
    "rsa_public_key": "path of the public half (PEM) of an RSA 2048-bit key pair; its "
                      "private half signs (mailhook sign --key). One pair for every source",
    "ec_public_key": "path of the public half (PEM) of an ECDSA P-256 key pair; its private "
                     "half signs. One pair for every source",
    "ses_certificate": "path of a self-signed X.509 certificate standing in for SNS's "
                       "signing certificate, in a file named SimpleNotificationService-*.pem; "
                       "its RSA private key signs",
    "webhook_url": "the URL ingest serves this source at: http://<listen>/v1/webhooks/<name>",
}

SECTIONS = ("source", "golden", "local")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # what mailhook's config accepts as a source name
_LIST_LINE = re.compile(r"MH_PROVIDER\(([a-z0-9_]+)\)")


class SourceFileError(ValueError):
    """A source.ini (or the provider list) that cannot be used."""


@dataclasses.dataclass
class Source:
    provider: str        # the fixtures folder's name, which is the provider's
    name: str            # the source's name in the config being written
    keys: dict[str, str]  # [source.<name>] in order; placeholders unresolved


def providers(path: Path = PROVIDER_LIST) -> list[str]:
    """The names in shared/providers/providers.def, in its order."""
    names = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if "MH_PROVIDER" not in stripped or stripped.startswith(("/*", "*")):
            continue
        m = _LIST_LINE.fullmatch(stripped)
        if not m or stripped != line:
            raise SourceFileError(f"{path}:{n}: not MH_PROVIDER(name) alone on its line")
        names.append(m.group(1))
    if len(set(names)) != len(names):
        raise SourceFileError(f"{path}: a provider is listed twice")
    return names


def placeholder(value: str) -> str | None:
    """The placeholder's name when value is one, else None."""
    return value[1:] if value.startswith("@") else None


def read(provider: str, target: str, fixtures: Path = FIXTURES) -> Source:
    """The source `target` ("golden" or "local") writes for provider's fixtures."""
    if target not in TENANTS:
        raise ValueError(f"target is one of {sorted(TENANTS)}, not {target!r}")
    path = fixtures / provider / "source.ini"
    if not path.is_file():
        raise SourceFileError(f"{path}: missing (every fixtures folder has one)")
    # No [DEFAULT] section whose keys would leak into the others: every key is where it
    # is written. Keys keep their case.
    cp = configparser.ConfigParser(interpolation=None, default_section="(no default section)")
    cp.optionxform = str
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error as e:
        raise SourceFileError(f"{path}: {e}") from None

    def fail(msg: str) -> SourceFileError:
        return SourceFileError(f"{path}: {msg}")

    unknown = set(cp.sections()) - set(SECTIONS)
    if unknown:
        raise fail(f"unknown section(s) {sorted(unknown)}; sections are {list(SECTIONS)}")
    if not cp.has_section("source"):
        raise fail("no [source] section")
    for section in cp.sections():
        for key, value in cp[section].items():
            if key == "tenant":
                raise fail(f"[{section}] tenant: set by each reader, not in the file")
            if key == "provider" and section != "source":
                raise fail(f"[{section}] provider: only [source] names the provider")
            if key == "name" and section != "local":
                raise fail(f"[{section}] name: only [local] may rename the source")
            if not value or any(c in value for c in "\t\r\n"):
                raise fail(f"[{section}] {key}: empty, or more than one line")
            ph = placeholder(value)
            if ph is not None and ph not in PLACEHOLDERS:
                raise fail(f"[{section}] {key}: unknown placeholder {value!r} "
                           f"(known: {', '.join('@' + p for p in PLACEHOLDERS)})")
    if cp["source"].get("provider") != provider:
        raise fail(f"[source] provider must be {provider!r} (the folder's name)")

    local_name = cp["local"].get("name", provider) if cp.has_section("local") else provider
    if not _NAME.fullmatch(local_name):
        raise fail(f"[local] name: {local_name!r} is not a valid source name")

    keys = {"provider": provider, "tenant": TENANTS[target]}
    keys.update((k, v) for k, v in cp["source"].items() if k != "provider")
    if cp.has_section(target):
        # An override keeps the key's place.
        keys.update((k, v) for k, v in cp[target].items() if k != "name")
    return Source(provider, local_name if target == "local" else provider, keys)


def read_all(target: str, fixtures: Path = FIXTURES,
             provider_list: Path = PROVIDER_LIST) -> list[Source]:
    """Every listed provider's source for target, in the list's order. Fails when a
    listed provider has no fixtures folder or a folder is not listed."""
    listed = providers(provider_list)
    folders = {p.name for p in fixtures.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if missing := [p for p in listed if p not in folders]:
        raise SourceFileError(f"listed in {provider_list} but no {fixtures}/<name> folder: "
                              f"{', '.join(missing)}")
    if unlisted := sorted(folders - set(listed)):
        raise SourceFileError(f"fixtures folders of no listed provider: {', '.join(unlisted)}")
    sources = [read(p, target, fixtures) for p in listed]
    names = [s.name for s in sources]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise SourceFileError(f"two sources named {', '.join(dup)} for {target}")
    return sources


def resolve(source: Source, values: dict[str, str]) -> dict[str, str]:
    """source's keys with every placeholder replaced by values[<placeholder name>]."""
    out = {}
    for k, v in source.keys.items():
        ph = placeholder(v)
        if ph is not None and ph not in values:
            raise SourceFileError(f"{source.provider}/source.ini: {k} = {v}: no value for "
                                  "this placeholder here")
        out[k] = values[ph] if ph is not None else v
    return out


def placeholders_of(source: Source) -> set[str]:
    """The placeholders source's keys use."""
    return {p for v in source.keys.values() if (p := placeholder(v)) is not None}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in TENANTS:
        print(f"usage: {argv[0]} {'|'.join(TENANTS)}", file=sys.stderr)
        return 2
    try:
        sources = read_all(argv[1])
    except (SourceFileError, OSError) as e:
        print(f"fixture_sources: {e}", file=sys.stderr)
        return 1
    for s in sources:
        for k, v in s.keys.items():
            print(f"{s.name}\t{k}\t{v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
