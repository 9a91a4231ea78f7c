from django.core.management.base import BaseCommand

from apps.accounts.roles import ROLE_NAMES, Role
from apps.accounts.services import user_set_role


class Command(BaseCommand):
    help = "Create (or update) a user with a role and print an API token for scripts."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLE_NAMES, default="viewer")
        parser.add_argument("--password", help="also allow admin/token login with this password")
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, password, email, **options):
        _, token = user_set_role(username=username, role=Role.from_name(role), password=password, email=email)
        self.stdout.write(token)
