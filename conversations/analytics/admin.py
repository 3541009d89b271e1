"""Admin dashboards (/admin/conversations/dashboard/) and the Customer 360 panel of the customer page.

Charts are drawn by plotly.js, served from the installed ``plotly`` Python package (``package_data/
plotly.min.js``), so nothing is copied into the repository and no CDN is needed. Each chart's numbers are
downloadable as CSV (``csv/<chart>/`` with the same date range). Staff see their own tenant; a superuser
without a membership picks one.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path

import plotly
from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.cache import cache_control

from conversations.analytics import dashboards
from conversations.analytics.models import Dashboard
from conversations.analytics.timeline import customer_timeline
from identity.admin_scoping import user_tenant_id
from identity.models import Tenant

DEFAULT_DAYS = 30
MAX_DAYS = 366
TITLES = {
    "sentiment": "Sentiment trend (mean, −1..1)",
    "channel_mix": "Channel mix (interactions)",
    "escalation_rate": "Escalation rate",
    "lead_conversion": "Lead conversion (leads → booked)",
    "csat": "CSAT (mean 1–5)",
    "dropped_calls": "Dropped calls completed on another channel within 24 h (weekly)",
    "response_times": "Response time (median seconds)",
}


@lru_cache(maxsize=1)
def plotly_js() -> bytes:
    """The plotly.js bundle shipped inside the installed ``plotly`` package."""
    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


def _parse_day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def date_range(request, tenant: Tenant) -> tuple[date, date, datetime, datetime]:
    """``(first day, last day, start, end)`` from ``?start=YYYY-MM-DD&end=YYYY-MM-DD`` in the tenant's zone
    (default: the last 30 days; at most 366); ``end`` is exclusive midnight after the last day."""
    today = timezone.now().astimezone(tenant.tzinfo).date()
    last = _parse_day(request.GET.get("end")) or today
    first = _parse_day(request.GET.get("start")) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        first, last = last, first
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    start = datetime.combine(first, time.min, tzinfo=tenant.tzinfo)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tenant.tzinfo)
    return first, last, start, end


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Not a list of rows: the changelist is the dashboard page."""

    def has_module_permission(self, request):
        """Shown on the admin index only to superusers and to staff of a clinic (a membership)."""
        user = request.user
        return user.is_superuser or (user_tenant_id(user) is not None and super().has_module_permission(request))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("csv/<str:chart>/", view(self.csv_view), name="conversations_dashboard_csv"),
            path(
                "plotly.min.js",
                view(cache_control(max_age=86400, private=True)(self.plotly_view)),
                name="conversations_dashboard_plotly",
            ),
            *super().get_urls(),
        ]

    def _tenant(self, request) -> Tenant:
        if not self.has_view_permission(request):
            raise Http404
        tenant_id = user_tenant_id(request.user)
        if tenant_id is None and request.user.is_superuser:
            tenant_id = request.GET.get("tenant") or Tenant.objects.values_list("pk", flat=True).first()
        tenant = Tenant.objects.filter(pk=tenant_id).first() if tenant_id else None
        if tenant is None:
            raise Http404("no tenant")
        return tenant

    def plotly_view(self, request):
        return HttpResponse(plotly_js(), content_type="text/javascript")

    def csv_view(self, request, chart: str):
        if chart not in dashboards.CHARTS:
            raise Http404
        tenant = self._tenant(request)
        first, last, start, end = date_range(request, tenant)
        rows = dashboards.chart_rows(
            chart, tenant=tenant, start=start, end=end, bucket=dashboards.bucket_for(start, end)
        )
        out = io.StringIO()
        fields = list(rows[0]) if rows else ["bucket"]
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-{chart}-{first}-{last}.csv"'
        return response

    def changelist_view(self, request, extra_context=None):
        tenant = self._tenant(request)
        first, last, start, end = date_range(request, tenant)
        bucket = dashboards.bucket_for(start, end)
        data = {
            c: dashboards.chart_rows(c, tenant=tenant, start=start, end=end, bucket=bucket) for c in dashboards.CHARTS
        }
        query = f"start={first}&end={last}" + (f"&tenant={tenant.pk}" if request.user.is_superuser else "")
        charts = [
            {
                "key": c,
                "title": TITLES[c],
                "rows": len(data[c]),
                "csv": reverse("admin:conversations_dashboard_csv", args=[c]) + "?" + query,
            }
            for c in dashboards.CHARTS
        ]
        return TemplateResponse(
            request,
            "admin/conversations/dashboard.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Dashboards — {tenant}",
                "tenant": tenant,
                "first": first,
                "last": last,
                "bucket": bucket,
                "charts": charts,
                "tenants": Tenant.objects.all() if request.user.is_superuser else [],
                "chart_data": json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
                "plotly_url": reverse("admin:conversations_dashboard_plotly"),
            },
        )


def render_customer_360(customer, days: int = 90):
    """Escaped HTML: the customer's interactions per channel and per week (sentiment, count), last ``days``."""
    t = customer_timeline(
        tenant=customer.tenant, customer_id=customer.pk, start=timezone.now() - timedelta(days=days), limit=1
    )
    if not t.total:
        return format_html("<p>{}</p>", f"No interactions in the last {days} days.")

    def fmt(v):
        return "–" if v is None else f"{v:+.2f}"

    channels = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((c["channel"], c["count"], fmt(c["avg_sentiment"])) for c in t.by_channel),
    )
    weeks = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((w["week_start"], w["count"], fmt(w["avg_sentiment"])) for w in t.weekly),
    )
    return format_html(
        '<div class="cs-360"><p>{} interactions in the last {} days.</p>'
        '<table style="float:left;margin-right:24px"><tr><th>channel</th><th>interactions</th><th>mean sentiment</th></tr>{}</table>'
        "<table><tr><th>week of</th><th>interactions</th><th>mean sentiment</th></tr>{}</table></div>",
        t.total,
        days,
        channels,
        weeks,
    )
