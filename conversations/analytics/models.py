"""A proxy of ``call_logs`` that gives the admin dashboards a place (and a permission) in the admin index."""

from __future__ import annotations

from conversations.models import Interaction


class Dashboard(Interaction):
    """Not a table: ``view_dashboard`` lets staff open /admin/conversations/dashboard/."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboards"
