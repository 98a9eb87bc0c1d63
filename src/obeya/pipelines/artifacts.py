"""Artifacts: a job's packed files, uploaded by its runner, stored once by content.

Blobs live in DATA_DIR/artifacts/<sha256[:2]>/<sha256>; rows point at them. A download
path is built from the database's sha256 only, never from a name in the request, so no
request can reach outside the store (RELIABILITY C5).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from obeya.core.actors import Actor, system_actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.pipelines.leases import held_job
from obeya.pipelines.models import Artifact, Job, Runner
from obeya.runner.workspace import WorkspaceError, inspect_tar

MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024
MAX_EXTRACTED_BYTES = 4 * MAX_ARTIFACT_BYTES
MAX_MEMBERS = 100_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def store_root() -> Path:
    return Path(settings.DATA_DIR) / "artifacts"


def blob_path(sha256: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise NotFound("no such artifact")
    return store_root() / sha256[:2] / sha256


def _receive(stream: IO[bytes]) -> tuple[Path, str, int]:
    """Copy the upload to a temporary file in the store, hashing as it goes."""
    root = store_root()
    root.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(dir=root, prefix=".upload-")
    with os.fdopen(fd, "wb") as out:
        while block := stream.read(1 << 20):
            size += len(block)
            if size > MAX_ARTIFACT_BYTES:
                out.close()
                os.unlink(name)
                raise InvalidInput(f"artifact larger than {MAX_ARTIFACT_BYTES} bytes")
            digest.update(block)
            out.write(block)
    return Path(name), digest.hexdigest(), size


def upload(
    runner: Runner,
    job_id: int,
    lease_token: str,
    name: str,
    stream: IO[bytes],
    *,
    clock: Actor | None = None,
) -> Artifact:
    """Keep a job's artifact (a tar.gz) after checking every member is safe to unpack."""
    if not _NAME.match(name):
        raise InvalidInput(f"artifact name {name!r}: letters, digits, . _ - only", field="name")
    actor = clock or system_actor()
    with transaction.atomic():
        held_job(runner, job_id, lease_token, actor.now())  # refuse stale leases up front
    temporary, sha256, size = _receive(stream)
    try:
        paths = inspect_tar(temporary, max_bytes=MAX_EXTRACTED_BYTES, max_members=MAX_MEMBERS)
    except WorkspaceError as error:
        temporary.unlink(missing_ok=True)
        raise InvalidInput(f"artifact refused: {error}", field="archive") from None
    final = blob_path(sha256)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temporary, final)  # same content, same name: replacing is harmless
    now = actor.now()
    try:
        with transaction.atomic():
            job = held_job(runner, job_id, lease_token, now)
            expires = now + timedelta(
                seconds=int(job.spec.get("artifact_expire_seconds") or 30 * 86400)
            )
            return Artifact.objects.create(
                job=job,
                attempt=job.attempt,
                name=name,
                sha256=sha256,
                size=size,
                paths=paths,
                created_at=now,
                expires_at=expires,
            )
    except IntegrityError:
        raise Conflict(f'artifact "{name}" of this attempt is already stored') from None


def artifacts_of(job: Job) -> QuerySet[Artifact]:
    return Artifact.objects.filter(job=job).order_by("attempt", "name")


def get_artifact(job: Job, name: str) -> Artifact:
    found = artifacts_of(job).filter(name=name).order_by("-attempt").first()
    expired = found is not None and found.expires_at < system_actor().now()
    if found is None or expired or not blob_path(found.sha256).exists():
        raise NotFound(f'job {job.pk} has no artifact "{name}" (it may have expired)', field="name")
    return found


def by_sha256(sha256: str) -> Artifact:
    """An artifact by its content hash (deployments take artifacts this way)."""
    found = Artifact.objects.filter(sha256=sha256).select_related("job__run__service").first()
    if found is None:
        raise NotFound(f"no artifact with sha256 {sha256[:12]}…", field="sha256")
    return found


# Jobs that will run without anyone acting: their run's artifacts stay, expired or not
# (a deploy job waiting for approval takes an artifact of an earlier job).
RUN_AT_WORK = ("created", "queued", "running", "waiting_approval")
# A blob this young may belong to an upload whose row is not committed yet.
BLOB_GRACE = timedelta(hours=1)
MAX_EXPIRED_PER_SWEEP = 1000


def expire(*, clock: Actor | None = None) -> int:
    """Forget artifacts past their expiry; delete the blobs no remaining row points at.

    Artifacts of a run that still has jobs to run are kept until it has none. A blob is
    shared by every artifact with the same content, so it goes only with the last of
    them; a blob written within the last hour is left for a later sweep.
    """
    now = (clock or system_actor()).now()
    expired = Artifact.objects.filter(expires_at__lt=now).exclude(
        job__run__jobs__status__in=RUN_AT_WORK
    )
    gone = list(expired.values_list("pk", "sha256")[:MAX_EXPIRED_PER_SWEEP])
    if not gone:
        return 0
    Artifact.objects.filter(pk__in=[pk for pk, _ in gone]).delete()
    for sha256 in {sha for _, sha in gone}:
        if not Artifact.objects.filter(sha256=sha256).exists():
            _remove_blob(blob_path(sha256), now - BLOB_GRACE)
    return len(gone)


def remove_orphans(*, clock: Actor | None = None) -> int:
    """Delete blobs no artifact row points at, and uploads that never finished.

    Only files older than a day go: a younger one may be an upload still in flight.
    """
    now = (clock or system_actor()).now()
    before = (now - timedelta(days=1)).timestamp()
    root = store_root()
    if not root.is_dir():
        return 0
    removed = 0
    for entry in os.scandir(root):
        if entry.name.startswith(".upload-") and entry.stat().st_mtime < before:
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
        elif entry.is_dir(follow_symlinks=False) and re.fullmatch(r"[0-9a-f]{2}", entry.name):
            blobs = {
                blob.name: blob
                for blob in os.scandir(entry.path)
                if blob.stat(follow_symlinks=False).st_mtime < before
            }
            kept = set(
                Artifact.objects.filter(sha256__in=list(blobs)).values_list("sha256", flat=True)
            )
            for name in blobs.keys() - kept:
                Path(blobs[name].path).unlink(missing_ok=True)
                removed += 1
    return removed


def _remove_blob(path: Path, written_before: datetime) -> None:
    try:
        if path.stat().st_mtime < written_before.timestamp():
            path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
