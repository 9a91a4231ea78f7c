import threading

from django.core.management.base import BaseCommand

from apps.sparkplug.simulator import EdgeNodeSimulator, edge_node_credentials


class Command(BaseCommand):
    help = "Run a simulated Sparkplug B edge node (demo:edge1) with two devices, until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between data messages.")

    def handle(self, *args, interval, **options):
        username, password = edge_node_credentials()
        self.stdout.write(f"sparkplug simulator: edge node {username} publishing every {interval} s")
        stop = threading.Event()
        try:
            EdgeNodeSimulator(username=username, password=password, interval_s=interval).run(stop)
        except KeyboardInterrupt:
            stop.set()
