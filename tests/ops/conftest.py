"""Operations tests reuse the deploying service of tests/deploy."""

from tests.deploy.conftest import shop  # noqa: F401 - the fixture itself
