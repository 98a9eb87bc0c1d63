"""SSH targets: the release layout on remote hosts, driven over asyncssh."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from obeya.deploy.targets import Host, TargetError


def hosts_for(target: Mapping[str, Any]) -> list[Host]:
    raise TargetError("SSH targets are not available in this build yet")
