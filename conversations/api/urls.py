"""``/api/v1/`` routes of the export API (included from :mod:`callsphere.api_urls`)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from conversations.api import audit_events, erasures, privacy, staff, views

router = SimpleRouter()
router.register("interactions", views.InteractionViewSet, basename="interaction")
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("appointments", views.AppointmentViewSet, basename="appointment")
router.register("audit-events", audit_events.AuditEventViewSet, basename="audit-event")
router.register("erasures", erasures.ErasureViewSet, basename="erasure")

urlpatterns = [
    path(
        "conversations/<uuid:conversation_id>/messages/",
        staff.ConversationMessagesView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<uuid:conversation_id>/release/",
        staff.ConversationReleaseView.as_view(),
        name="conversation-release",
    ),
    path("customers/<uuid:customer_id>/timeline/", views.CustomerTimelineView.as_view(), name="customer-timeline"),
    path("customers/<uuid:customer_id>/erase/", privacy.CustomerEraseView.as_view(), name="customer-erase"),
    path("customers/<uuid:customer_id>/export/", privacy.CustomerExportView.as_view(), name="customer-export"),
    path("reports/quarterly-review/", views.QuarterlyReviewView.as_view(), name="quarterly-review"),
    *router.urls,
]
