"""``/api/v1/`` routes of the export API (included from :mod:`callsphere.api_urls`)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from conversations.api import views

router = SimpleRouter()
router.register("interactions", views.InteractionViewSet, basename="interaction")
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("appointments", views.AppointmentViewSet, basename="appointment")

urlpatterns = [
    path("customers/<uuid:customer_id>/timeline/", views.CustomerTimelineView.as_view(), name="customer-timeline"),
    path("reports/quarterly-review/", views.QuarterlyReviewView.as_view(), name="quarterly-review"),
    *router.urls,
]
