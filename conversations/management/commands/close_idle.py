"""``manage.py close_idle [--now]``: close idle sessions (what the beat task does every 30 s)."""

from django.core.management.base import BaseCommand

from conversations.services import close_idle


class Command(BaseCommand):
    help = "Close sessions idle past their window (enrichment is queued for each). --now closes all open ones."

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="close every open session and conversation now")

    def handle(self, *args, **options):
        closed = close_idle(close_all=options["now"])
        self.stdout.write(f"closed {closed['interactions']} session(s), {closed['conversations']} conversation(s)")
