"""Set-up that ``cmlfleet init`` performs and the demo and tests reuse."""

from __future__ import annotations

from collections.abc import Iterator

from backend import history
from backend.auth import create_user
from backend.models import AuditEntry, Lab, User, Worker
from backend.settings import Settings


def initialise(settings: Settings) -> Iterator[str]:
    """Create indexes and the history collection; add the first admin if none."""
    for document in (User, Worker, Lab, AuditEntry):
        document.ensure_indexes()
    yield "indexes ready"
    kind = history.ensure_collection(settings.history_retention_days)
    yield f"history collection ready ({kind})"
    if User.objects.count() == 0:
        if settings.admin_username and settings.admin_password:
            create_user(settings.admin_username, settings.admin_password, "admin")
            yield f"admin {settings.admin_username} created"
        else:
            yield (
                "no user exists: set ADMIN_USERNAME and ADMIN_PASSWORD, "
                "or run `cmlfleet users add`"
            )
