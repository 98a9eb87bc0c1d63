"""Form field lists for the catalog pages; validation itself lives in services."""

from __future__ import annotations

from django.http import QueryDict

SERVICE_FIELDS = (
    ("name", "Name", "text", "Payments API"),
    ("description", "Description", "textarea", "What the service does, in one or two sentences."),
    (
        "repository_url",
        "Git repository",
        "text",
        "https://git.example.com/team/payments.git or a local path",
    ),
    ("owner_team", "Owner team", "text", "Team Falcon"),
)
CHARTER_FIELDS = (
    ("vision", "Vision", "textarea", "Where the service is going and why it matters."),
    ("goals", "Goals", "textarea", "Measurable goals, one per line."),
    ("business_value", "Business value", "textarea", "The value it brings, and to whom."),
    ("customers", "Customers", "textarea", "Who uses it: teams, segments, partners."),
)


def submitted(data: QueryDict, names: tuple[str, ...]) -> dict[str, str]:
    """The submitted values of ``names``, so a refused form is shown again as typed."""
    return {name: data.get(name, "") for name in names}
