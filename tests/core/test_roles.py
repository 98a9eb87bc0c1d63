import pytest

from obeya.core.roles import (
    ROLE_DESCRIPTIONS,
    ROLE_PERMISSIONS,
    Permission,
    Role,
    allows,
    parse_role,
)


def test_every_permission_is_granted_by_some_role():
    for permission in Permission:
        assert ROLE_PERMISSIONS[permission], permission


def test_every_role_is_described():
    assert set(ROLE_DESCRIPTIONS) == set(Role)


def test_gatekeeper_approves_and_developer_does_not():
    assert allows({Role.GATEKEEPER}, Permission.APPROVE)
    assert not allows({Role.DEVELOPER}, Permission.APPROVE)
    assert not allows(set(), Permission.EDIT_BACKLOG)


def test_unknown_role_names_the_known_ones():
    with pytest.raises(ValueError, match="service_master"):
        parse_role("boss")
