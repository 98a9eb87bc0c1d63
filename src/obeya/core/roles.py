"""The per-service roles of §2.1.1 and what each may do. Pure rules: no Django, no I/O.

Services check a permission with ``allows(roles, permission)``; the same answer then holds
for the web UI, the API and the CLI because they all call the services.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SERVICE_MASTER = "service_master"
    PROCESS_MASTER = "process_master"
    DEVOPS_ENGINEER = "devops_engineer"
    RELIABILITY_ENGINEER = "reliability_engineer"
    GATEKEEPER = "gatekeeper"
    DEVELOPER = "developer"
    OPERATOR = "operator"


ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.SERVICE_MASTER: "Owns the service: sets scope and charter, orders the backlog, "
    "moves the lifecycle stage, manages the team, decides end of life.",
    Role.PROCESS_MASTER: "Guards the way of working: board, WIP limits, definitions of done.",
    Role.DEVOPS_ENGINEER: "Builds and runs the pipeline and the environments; resets the andon.",
    Role.RELIABILITY_ENGINEER: "Defines test methods, monitors, SLOs and continuity drills.",
    Role.GATEKEEPER: "Checks legitimacy and regulation; approves go-live to protected "
    "environments.",
    Role.DEVELOPER: "Builds the service: stories, commits, tests, deploys to non-protected "
    "environments.",
    Role.OPERATOR: "Runs the service in production: incidents, backups, restores.",
}


class Permission(StrEnum):
    EDIT_CHARTER = "service.edit_charter"
    MOVE_STAGE = "service.move_stage"
    MANAGE_TEAM = "service.manage_team"
    EDIT_BACKLOG = "backlog.edit"
    ORDER_BACKLOG = "backlog.order"
    CONFIGURE_BOARD = "board.configure"
    RUN_PIPELINE = "pipeline.run"
    MANAGE_SECRETS = "pipeline.manage_secrets"
    RESET_ANDON = "andon.reset"
    CONFIGURE_ENVIRONMENTS = "deploy.configure"
    DEPLOY = "deploy.run"
    DEPLOY_PROTECTED = "deploy.run_protected"
    APPROVE = "deploy.approve"
    OPERATE = "ops.operate"
    CONFIGURE_MONITORING = "ops.configure"


_EVERY_ROLE = frozenset(Role)

ROLE_PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.EDIT_CHARTER: frozenset({Role.SERVICE_MASTER, Role.PROCESS_MASTER}),
    Permission.MOVE_STAGE: frozenset({Role.SERVICE_MASTER}),
    Permission.MANAGE_TEAM: frozenset({Role.SERVICE_MASTER}),
    Permission.EDIT_BACKLOG: _EVERY_ROLE,
    Permission.ORDER_BACKLOG: frozenset({Role.SERVICE_MASTER}),
    Permission.CONFIGURE_BOARD: frozenset({Role.SERVICE_MASTER, Role.PROCESS_MASTER}),
    Permission.RUN_PIPELINE: frozenset(
        {Role.SERVICE_MASTER, Role.DEVOPS_ENGINEER, Role.DEVELOPER, Role.RELIABILITY_ENGINEER}
    ),
    Permission.MANAGE_SECRETS: frozenset({Role.SERVICE_MASTER, Role.DEVOPS_ENGINEER}),
    Permission.RESET_ANDON: frozenset({Role.SERVICE_MASTER, Role.DEVOPS_ENGINEER}),
    Permission.CONFIGURE_ENVIRONMENTS: frozenset({Role.SERVICE_MASTER, Role.DEVOPS_ENGINEER}),
    Permission.DEPLOY: frozenset({Role.DEVOPS_ENGINEER, Role.DEVELOPER, Role.OPERATOR}),
    # Developers deploy to non-protected environments only (§2.1.1).
    Permission.DEPLOY_PROTECTED: frozenset({Role.DEVOPS_ENGINEER, Role.OPERATOR}),
    Permission.APPROVE: frozenset({Role.GATEKEEPER}),
    Permission.OPERATE: frozenset(
        {Role.OPERATOR, Role.RELIABILITY_ENGINEER, Role.DEVOPS_ENGINEER, Role.SERVICE_MASTER}
    ),
    Permission.CONFIGURE_MONITORING: frozenset(
        {Role.RELIABILITY_ENGINEER, Role.DEVOPS_ENGINEER, Role.SERVICE_MASTER}
    ),
}


def allows(roles: frozenset[Role] | set[Role], permission: Permission) -> bool:
    """Whether holding ``roles`` on a service grants ``permission`` on it."""
    return bool(ROLE_PERMISSIONS[permission] & set(roles))


def roles_for(permission: Permission) -> list[Role]:
    """The roles that grant ``permission``, in declaration order (for error messages)."""
    return [role for role in Role if role in ROLE_PERMISSIONS[permission]]


def parse_role(value: str) -> Role:
    """The Role named ``value``; ValueError listing the known roles otherwise."""
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise ValueError(f"unknown role {value!r}: use one of {known}") from None
