"""`python -m tests.chaos.seed`: build the test world (tests/factories.py) in the database DATABASE_URL names
and print its device keys as one JSON line, for a stack whose database the test process is not connected to."""

import django

django.setup()

import orjson  # noqa: E402

from tests.factories import build_world  # noqa: E402

if __name__ == "__main__":
    print(orjson.dumps(build_world().device_keys).decode())
