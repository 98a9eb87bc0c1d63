"""Operations tests reuse the deploying service of tests/deploy."""

from pathlib import Path

import pytest

from tests.deploy.conftest import shop  # noqa: F401 - the fixture itself


@pytest.fixture(autouse=True)
def backups_may_write_tmp_path(
    _data_dir: Path, settings: object, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Backup commands here write into the test's folder, opened to them the way an
    administrator opens a backup volume (OBEYA_SANDBOX_WRITABLE). The data directory moves
    out of it: a folder holding the data directory is never opened."""
    settings.DATA_DIR = tmp_path_factory.mktemp("data")  # type: ignore[attr-defined]
    settings.OBEYA_SANDBOX_WRITABLE = [str(tmp_path)]  # type: ignore[attr-defined]
