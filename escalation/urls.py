"""Escalation routes at the site root: the acknowledge link, the pipeline's health and the page calls' Twilio
webhooks."""

from django.urls import path

from escalation import views

urlpatterns = [
    path("a/<str:token>", views.ack, name="escalation-ack"),
    path("a/<str:token>/portal", views.portal, name="escalation-portal"),
    path("healthz/escalation", views.pipeline_healthz, name="healthz-escalation"),
    path("twilio/escalation/call/<int:attempt_id>/", views.call_prompt, name="escalation-call"),
    path("twilio/escalation/call/<int:attempt_id>/gather/", views.call_gather, name="escalation-call-gather"),
    path("twilio/escalation/status/<int:attempt_id>/", views.status_callback, name="escalation-status"),
    path("twilio/escalation/responder/<uuid:incident_id>/", views.responder_key, name="escalation-responder-key"),
]
