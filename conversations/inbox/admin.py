"""The staff inbox in admin: ``/admin/conversations/inbox/`` (the list) and ``…/inbox/<id>/`` (a conversation).

Tenant-scoped like every admin page: a staff user sees only their clinic's conversations (a superuser without a
clinic sees none here); another clinic's id answers 404. Every write goes through
:mod:`conversations.inbox.services`. Pages refresh live from the ``/ws/inbox/`` websocket (events carry ids only;
the page re-fetches its fragments through these views). Everything shown is escaped by the templates.
"""

from __future__ import annotations

from datetime import datetime
from functools import wraps

from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from conversations.inbox.models import CannedResponse, ConversationHandling, InboxConversation, InboxNote
from conversations.inbox.outbox import SENDERS, ChannelUnavailable
from conversations.inbox.selectors import (
    InboxFilters,
    canned_responses_for,
    conversation_thread,
    inbox_rows,
    patient_card,
)
from conversations.inbox.services import (
    conversation_assign,
    conversation_mark_read,
    conversation_release,
    conversation_set_status,
    conversation_take_over,
    inbox_note_add,
    staff_message_send,
)
from conversations.models import Channel, Conversation
from identity.admin_scoping import TenantScopedAdmin, user_tenant_id
from identity.audit import audit_record
from identity.roles import user_reads_transcripts


def _parse_at(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _filters(request) -> InboxFilters:
    get = request.GET
    try:
        urgency = int(get.get("urgency") or 0) or None
    except ValueError:
        urgency = None
    return InboxFilters(
        who=get.get("who") if get.get("who") in ("all", "mine", "unassigned") else "all",
        channel=get.get("channel") if get.get("channel") in Channel.values else "",
        urgency=urgency if urgency in (1, 2, 3, 4, 5) else None,
        status=get.get("status") or "active",
        q=(get.get("q") or "")[:200],
    )


@admin.register(CannedResponse)
class CannedResponseAdmin(TenantScopedAdmin):
    """Saved replies of the clinic, offered in the inbox's reply box."""

    list_display = ["title", "body"]
    search_fields = ["title", "body"]
    ordering = ["title"]


def _readers_only(func):
    """403 for a clinic role that must not read conversations (e.g. "Clinic scheduling"), on every inbox URL."""

    @wraps(func)
    def wrapped(request, *args, **kwargs):
        if request.user.is_authenticated and not user_reads_transcripts(request.user):
            raise PermissionDenied("Your role does not include reading patients' conversations.")
        return func(request, *args, **kwargs)

    return wrapped


@admin.register(InboxConversation)
class InboxAdmin(admin.ModelAdmin):
    """Not a list of rows: the changelist is the inbox page, the change page the conversation view."""

    def _tenant_id(self, request):
        """The staff user's tenant, or None (not staff, no clinic, or a role that must not read conversations)."""
        if not (request.user.is_staff and user_reads_transcripts(request.user)):
            return None
        return user_tenant_id(request.user)

    def has_module_permission(self, request):
        return self._tenant_id(request) is not None

    def has_view_permission(self, request, obj=None):
        return self._tenant_id(request) is not None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(_readers_only(func))

        return [
            path("", view(self.inbox_view), name="conversations_inboxconversation_changelist"),
            path("rows/", view(self.rows_view), name="inbox_rows"),
            path("<uuid:pk>/", view(self.conversation_view), name="inbox_conversation"),
            path("<uuid:pk>/change/", view(self.conversation_view), name="conversations_inboxconversation_change"),
            path("<uuid:pk>/thread/", view(self.thread_view), name="inbox_thread"),
            path("<uuid:pk>/act/", view(require_POST(self.act_view)), name="inbox_act"),
        ]

    # --- pages -----------------------------------------------------------------------------------------------

    def _context(self, request, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, **extra}

    def _rows_context(self, request):
        tenant_id = self._tenant_id(request)
        if tenant_id is None:
            raise Http404
        filters = _filters(request)
        return {
            "rows": inbox_rows(tenant_id=tenant_id, user=request.user, filters=filters),
            "filters": filters,
            "channels": [(c.value, c.label) for c in Channel],
        }

    def inbox_view(self, request):
        if self._tenant_id(request) is None:  # a superuser without a clinic: the ordinary admin index
            return HttpResponseRedirect(reverse("admin:index"))
        return TemplateResponse(
            request,
            "admin/conversations/inbox.html",
            self._context(request, title="Inbox", **self._rows_context(request)),
        )

    def rows_view(self, request):
        return TemplateResponse(request, "admin/conversations/inbox_rows.html", self._rows_context(request))

    def _conversation(self, request, pk) -> Conversation:
        tenant_id = self._tenant_id(request)
        if tenant_id is None:
            raise Http404
        return get_object_or_404(Conversation.objects.select_related("tenant", "customer"), pk=pk, tenant_id=tenant_id)

    def _thread_context(self, conversation):
        handling = ConversationHandling.objects.filter(conversation=conversation).select_related(
            "assignee", "taken_over_by"
        )
        return {
            "conversation": conversation,
            "turns": [{**t, "at_dt": _parse_at(t["at"])} for t in conversation_thread(conversation=conversation)],
            "notes": InboxNote.objects.filter(conversation=conversation)
            .select_related("author")
            .order_by("created_at"),
            "handling": handling.first(),
        }

    def conversation_view(self, request, pk):
        conversation = self._conversation(request, pk)
        audit_record(
            request=request,
            action="inbox.view",
            tenant_id=conversation.tenant_id,
            customer_id=conversation.customer_id,
            obj=conversation,
        )
        conversation_mark_read(conversation=conversation)
        context = self._context(
            request,
            title="Conversation",
            card=patient_card(conversation=conversation),
            reply_channels=[(c, Channel(c).label) for c in (Channel.CHAT, Channel.SMS, Channel.EMAIL) if c in SENDERS],
            statuses=ConversationHandling.Status.choices,
            canned=(canned := canned_responses_for(conversation=conversation, user=request.user)),
            canned_texts=[text for _, text in canned],
            **self._thread_context(conversation),
        )
        return TemplateResponse(request, "admin/conversations/inbox_conversation.html", context)

    def thread_view(self, request, pk):
        conversation = self._conversation(request, pk)
        return TemplateResponse(request, "admin/conversations/inbox_thread.html", self._thread_context(conversation))

    def act_view(self, request, pk):
        conversation = self._conversation(request, pk)
        action, user = request.POST.get("action", ""), request.user
        back = HttpResponseRedirect(reverse("admin:inbox_conversation", args=[conversation.pk]))
        try:
            if action == "reply":
                sent = staff_message_send(
                    conversation=conversation,
                    user=user,
                    body=request.POST.get("body", ""),
                    channel=request.POST.get("channel") or None,
                    idempotency_key=request.POST.get("idempotency_key") or None,
                )
                messages.success(request, f"Sent by {Channel(sent.channel).label}. The AI is paused.")
            elif action == "note":
                inbox_note_add(conversation=conversation, user=user, body=request.POST.get("body", ""))
            elif action == "take_over":
                conversation_take_over(conversation=conversation, user=user)
                messages.success(request, "You have taken over: the AI does not answer this patient.")
            elif action == "release":
                conversation_release(conversation=conversation, user=user)
                messages.success(request, "Returned to the AI.")
            elif action == "assign_me":
                conversation_assign(conversation=conversation, assignee=user)
            elif action == "unassign":
                conversation_assign(conversation=conversation, assignee=None)
            elif action == "assign":
                assignee = (
                    get_user_model()
                    .objects.filter(
                        pk=request.POST.get("assignee") or 0,
                        membership__tenant_id=conversation.tenant_id,
                        is_staff=True,
                    )
                    .first()
                )
                conversation_assign(conversation=conversation, assignee=assignee)
            elif action == "status":
                conversation_set_status(conversation=conversation, status=request.POST.get("status", ""))
            else:
                messages.error(request, "Unknown action.")
        except ChannelUnavailable as exc:
            messages.error(request, f"Not sent: {exc}")
        except ValueError as exc:
            messages.error(request, str(exc))
        return back


_site_login = admin.site.login


def _login_to_inbox(request, extra_context=None):
    """After signing in, staff land in the inbox (unless the login was for another page, ``?next=``)."""
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        extra_context = {
            REDIRECT_FIELD_NAME: reverse("admin:conversations_inboxconversation_changelist"),
            **(extra_context or {}),
        }
    return _site_login(request, extra_context)


admin.site.login = _login_to_inbox  # type: ignore[method-assign]
