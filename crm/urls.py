"""CRM OAuth routes: ``/crm/oauth/<provider>/start/`` and the registered redirect ``…/callback/``."""

from django.urls import path

from crm import views

urlpatterns = [
    path("crm/oauth/<str:provider>/start/", views.oauth_start, name="crm-oauth-start"),
    path("crm/oauth/<str:provider>/callback/", views.oauth_callback, name="crm-oauth-callback"),
]
