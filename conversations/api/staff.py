"""Staff replies for integrations: list a conversation's turns, send as staff (takes it over), release it.

``GET /api/v1/conversations/{id}/messages/`` (scope ``conversations:read``), ``POST`` the same path and
``POST /api/v1/conversations/{id}/release/`` (scope ``conversations:write``). Conversations are looked up in the
credential's tenant only: another tenant's id answers 404. A message the patient cannot receive on the chosen
channel (STOP, no address, no open chat) answers 409 with a ``code``.
"""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.api.authentication import ApiKeyUser, request_tenant_id
from conversations.api.models import ApiKey, ApiScope
from conversations.api.permissions import TenantScoped
from conversations.api.views import ERRORS
from conversations.inbox.outbox import ChannelUnavailable
from conversations.inbox.selectors import conversation_thread
from conversations.inbox.services import (
    MAX_STAFF_MESSAGE_CHARS,
    conversation_release,
    staff_message_send,
)
from conversations.models import Channel, Conversation
from identity.audit import audit_record


class ThreadTurnSerializer(serializers.Serializer):
    interaction = serializers.UUIDField(help_text="The call_logs row of the turn.")
    channel = serializers.ChoiceField(choices=Channel.choices)
    role = serializers.CharField(help_text="customer | agent | staff | system")
    text = serializers.CharField()
    at = serializers.CharField(help_text="ISO-8601 UTC.")
    staff_user_id = serializers.IntegerField(required=False, allow_null=True)


class StaffMessageIn(serializers.Serializer):
    body = serializers.CharField(max_length=MAX_STAFF_MESSAGE_CHARS, trim_whitespace=True)
    channel = serializers.ChoiceField(
        choices=[Channel.SMS, Channel.EMAIL, Channel.CHAT],
        required=False,
        help_text="Default: the channel the patient last used, else the first reachable of chat / SMS / email.",
    )
    idempotency_key = serializers.CharField(
        max_length=100, required=False, help_text="Repeat a request with the same key: the message is sent once."
    )


class StaffMessageOut(serializers.Serializer):
    channel = serializers.CharField()
    interaction = serializers.UUIDField()
    turn = serializers.DictField()


class ReleaseOut(serializers.Serializer):
    released = serializers.BooleanField(help_text="False if the conversation was not taken over.")


def _conversation(request, conversation_id) -> Conversation:
    return get_object_or_404(
        Conversation.objects.select_related("tenant", "customer"),
        pk=conversation_id,
        tenant_id=request_tenant_id(request),
    )


def _staff_user(request):
    """The Django user a staff message is attributed to: the session's, or the API key's creator (may be None)."""
    if isinstance(request.user, ApiKeyUser):
        return request.auth.created_by if isinstance(request.auth, ApiKey) else None
    return request.user


class _ScopedByMethod(APIView):
    permission_classes = [TenantScoped]
    renderer_classes = [JSONRenderer]
    read_scope = ApiScope.CONVERSATIONS_READ
    write_scope = ApiScope.CONVERSATIONS_WRITE

    @property
    def required_scope(self):
        return self.read_scope if self.request.method in ("GET", "HEAD", "OPTIONS") else self.write_scope


class ConversationMessagesView(_ScopedByMethod):
    """The conversation's turns on every channel, oldest first; POST sends a staff message and takes it over."""

    @extend_schema(responses={200: ThreadTurnSerializer(many=True), **ERRORS})
    def get(self, request, conversation_id):
        conversation = _conversation(request, conversation_id)
        turns = conversation_thread(conversation=conversation)
        audit_record(
            request=request,
            action="api.messages",
            tenant_id=conversation.tenant_id,
            customer_id=conversation.customer_id,
            obj=conversation,
            details={"rows": len(turns)},
        )
        return Response(ThreadTurnSerializer(turns, many=True).data)

    @extend_schema(
        request=StaffMessageIn,
        responses={
            201: StaffMessageOut,
            (409, "application/json"): OpenApiResponse(description="Channel unavailable."),
            **ERRORS,
        },
    )
    def post(self, request, conversation_id):
        conversation = _conversation(request, conversation_id)
        data = StaffMessageIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                sent = staff_message_send(
                    conversation=conversation,
                    user=_staff_user(request),
                    body=data.validated_data["body"],
                    channel=data.validated_data.get("channel"),
                    idempotency_key=data.validated_data.get("idempotency_key"),
                )
        except ChannelUnavailable as exc:
            return Response({"code": exc.code, "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except ValueError as exc:
            return Response({"body": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        out = {"channel": sent.channel, "interaction": sent.interaction.pk, "turn": sent.turn}
        return Response(StaffMessageOut(out).data, status=status.HTTP_201_CREATED)


class ConversationReleaseView(_ScopedByMethod):
    """Return the conversation to the AI ("Return to AI")."""

    @extend_schema(request=None, responses={200: ReleaseOut, **ERRORS})
    def post(self, request, conversation_id):
        conversation = _conversation(request, conversation_id)
        user = _staff_user(request)
        released = conversation_release(conversation=conversation, user=user, reason="api" if user is None else "staff")
        return Response(ReleaseOut({"released": released}).data)
