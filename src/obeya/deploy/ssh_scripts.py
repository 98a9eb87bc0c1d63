"""The fixed shell scripts an SSH target runs on its hosts, and how their output is read.

Each script is run as ``sh -c SCRIPT obeya-ssh ARG…`` with every argument shell-quoted:
scripts refer to values only as ``"$1"``, ``"$2"`` …, so a path, release id, command or
environment value is never pasted into shell text. Manifests are computed the way
``targets.hash_tree`` computes them (path → sha256, symlinks as ``->target``), so drift
is judged the same on every kind of target.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tarfile
from collections.abc import Iterable
from pathlib import Path

from obeya.deploy.targets import MANIFEST_LIMIT

EXISTS = 3  # exit code: the release is already there
MISSING = 4  # exit code: the release is not there

PREPARE = 'mkdir -p -- "$1/releases" "$1/shared" "$1/archive"'

CURRENT = 'readlink -- "$1/current" || :'

RELEASES = """\
cd -- "$1/releases" 2>/dev/null || exit 0
for name in *; do
  if [ -d "$name" ]; then printf '%s\\0' "$name"; fi
done
"""

HAS_RELEASE = 'test -d "$1/releases/$2"'

DISCARD_INCOMING = 'rm -rf -- "$1"/releases/.incoming-* "$1"/.current-*'

INCOMING = f"""\
cd -- "$1/releases" || exit 1
if [ -e "$2" ]; then exit {EXISTS}; fi
rm -rf -- ".incoming-$2" ".incoming-$2.tar" && mkdir -- ".incoming-$2"
"""

# The archive was checked on the Obeya server before upload; tar still strips leading
# slashes and skips ".." members by default, and takes no owners from the archive.
EXTRACT = """\
cd -- "$1/releases/.incoming-$2" || exit 1
if ! tar -x --force-local --no-same-owner --no-same-permissions -f "../.incoming-$2.tar"; then
  cd .. && rm -rf -- ".incoming-$2" ".incoming-$2.tar"
  exit 1
fi
chmod -R go-w,ug-s . || exit 1
cd .. && rm -f -- ".incoming-$2.tar" && mv -T -- ".incoming-$2" "$2" || exit 1
sync -- . 2>/dev/null || :
"""

# ln -s makes the new link beside current; mv -T renames it over current: rename(2),
# so readers see the old release or the new one, never neither.
SWITCH = f"""\
cd -- "$1" || exit 1
if [ ! -d "releases/$2" ]; then exit {MISSING}; fi
ln -s -- "releases/$2" "$3" || exit 1
mv -T -- "$3" current || {{ rm -f -- "$3"; exit 1; }}
sync -- . 2>/dev/null || :
"""

ARCHIVE = """\
cd -- "$1" || exit 1
if [ ! -e "releases/$2" ]; then exit 0; fi
destination="archive/$2"
n=1
while [ -e "$destination" ]; do n=$((n + 1)); destination="archive/$2.$n"; done
mkdir -p archive && mv -T -- "releases/$2" "$destination"
"""

MANIFEST = """\
cd -P -- "$1" 2>/dev/null || exit 0
find . -type f -print0 | xargs -0 -r sha256sum -z --
printf '//\\0'
find . -type l -printf '%p\\0%l\\0'
"""

# $1 directory, $2 timeout in seconds, $3 the command, then NAME=value pairs. timeout(1)
# puts the command in its own process group and kills the group when time is up.
RUN = """\
directory=$1 limit=$2 command=$3
shift 3
cd -- "$directory" || exit 127
output=$(mktemp "${TMPDIR:-/tmp}/obeya-run.XXXXXX") || exit 127
( exec timeout -k 5 "$limit" env "$@" bash -c "$command" ) </dev/null >"$output" 2>&1 &
pid=$!
tail -s 0.05 -n +1 -f --pid="$pid" -- "$output"
wait "$pid"
code=$?
rm -f -- "$output"
exit "$code"
"""


def command_line(script: str, args: Iterable[str]) -> str:
    """The command line for the remote login shell: the script and its values, quoted."""
    return " ".join(["sh", "-c", shlex.quote(script), "obeya-ssh", *map(shlex.quote, args)])


def _relative(name: str) -> str:
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _capped(found: dict[str, str], limit: int) -> dict[str, str]:
    return found if len(found) <= limit else dict(sorted(found.items())[:limit])


def archive_manifest(archive: Path, limit: int = MANIFEST_LIMIT) -> dict[str, str]:
    """The manifest the release will have once ``archive`` (already checked) is unpacked."""
    found: dict[str, str] = {}
    files: dict[str, str] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = _relative(member.name)
            if not name or member.isdir():
                continue
            if member.isreg():
                handle = tar.extractfile(member)
                digest = hashlib.sha256()
                while handle is not None and (block := handle.read(1 << 20)):
                    digest.update(block)
                found[name] = files[name] = digest.hexdigest()
            elif member.issym():
                found[name] = "->" + member.linkname
                files.pop(name, None)
            elif member.islnk():
                found[name] = files[name] = files[_relative(member.linkname)]
    return _capped(found, limit)


def parse_manifest(output: bytes, limit: int = MANIFEST_LIMIT) -> dict[str, str]:
    """Read MANIFEST's output: ``sha256sum -z`` lines, a ``//`` mark, then link pairs."""
    checksums, _, links = output.partition(b"//\0")
    found: dict[str, str] = {}
    for line in checksums.split(b"\0"):
        if len(line) > 66:  # 64 hex digits, a space, a mode character, the path
            found[_relative(os.fsdecode(line[66:]))] = line[:64].decode()
    pairs = links.split(b"\0")
    for name, target in zip(pairs[0::2], pairs[1::2], strict=False):
        if name:
            found[_relative(os.fsdecode(name))] = "->" + os.fsdecode(target)
    return _capped(found, limit)
