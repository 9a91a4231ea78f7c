"""One message never costs another: a micro-batch that cannot be created is split down to the guilty
message; dead letters are sampled and truncated so junk cannot fill the table; and an MQTT dead letter can be
replayed from the admin once its cause is put right."""

from __future__ import annotations

import base64

import pytest
from django.urls import reverse

from apps.deadletters.models import DeadLetter
from apps.devices.models import Device
from apps.ingest.models import Reading
from apps.mqtt import topics
from apps.mqtt.rejects import JUNK_MAX_BYTES, DeadLetterBudget
from apps.mqtt.replay import dead_letter_replay
from tests.mqtt.broker import datagram

CHANGELIST = "admin:deadletters_deadletter_changelist"
# A reading time the adapters take (epoch milliseconds) that is far beyond any real clock.
IMPOSSIBLE_TS = 1e20


def _letters() -> list[DeadLetter]:
    return list(DeadLetter.objects.filter(source="mqtt").order_by("created_at"))


def _stored(world, key: str) -> list[float]:
    return sorted(Reading.objects.filter(sensor=world.sensors[key]).values_list("value", flat=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_messages_that_cannot_be_stored_cost_only_themselves(world, start_bridge, device_mqtt, wait_for):
    # One micro-batch for everything below: only the time threshold (and the end of the test) closes it.
    bridge = start_bridge(batch_max_wait_s=1.5, batch_max_readings=10_000)
    meter, env = device_mqtt("dc-meter-001"), device_mqtt("env-001")
    for seq in range(1, 4):
        meter.publish(topics.TELEMETRY, datagram(seq, [("voltage_dc", 700.0 + seq)], ts=f"2026-02-12T16:00:0{seq}Z"))
        env.publish(topics.TELEMETRY, datagram(seq, [("temperature", 20.0 + seq)], ts=f"2026-02-12T16:00:0{seq}Z"))
    meter.publish(topics.TELEMETRY, datagram(4, [("voltage_dc", 1.0)], ts=IMPOSSIBLE_TS))
    env.publish(topics.TELEMETRY, datagram(5, [("temperature", 1.0)], ts=IMPOSSIBLE_TS))

    wait_for(lambda: len(_stored(world, "env-001/temperature")) == 3, timeout=20)
    wait_for(lambda: bridge.bridge.stats["acknowledged"] == 8, timeout=10)
    assert _stored(world, "dc-meter-001/voltage_dc") == [701.0, 702.0, 703.0]
    assert _stored(world, "env-001/temperature") == [21.0, 22.0, 23.0]
    letters = _letters()
    assert len(letters) == 2
    # Refused as it arrived (by the adapters' time bounds) or split off the batch that could not be created.
    assert {letter.task_name for letter in letters} <= {"mqtt.error", "mqtt.invalid_message"}
    assert {letter.payload["topic"] for letter in letters} == {
        meter.topic(topics.TELEMETRY),
        env.topic(topics.TELEMETRY),
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_flood_of_junk_leaves_a_few_dead_letters_and_the_bridge_goes_on(
    world, start_bridge, device_mqtt, settings, wait_for
):
    settings.MQTT_DEAD_LETTERS_PER_DEVICE_PER_MINUTE = 3
    settings.MQTT_DEAD_LETTERS_PER_MINUTE = 5
    bridge = start_bridge()
    meter, env = device_mqtt("dc-meter-001"), device_mqtt("env-001")

    for number in range(20):
        meter.publish_raw(topics.TELEMETRY, b"{junk " + b"x" * 5000 + str(number).encode())
        env.publish_raw(topics.HELLO, b"not json at all")
    meter.publish(topics.TELEMETRY, datagram(1, [("voltage_dc", 750.0)]))

    wait_for(lambda: _stored(world, "dc-meter-001/voltage_dc") == [750.0], timeout=20)
    stats = bridge.bridge.stats
    assert stats["dead_letter_invalid_json"] == 40
    # Within one minute 3 of each device and 5 in all; a test that straddles a minute may keep twice that.
    letters = _letters()
    assert 5 <= len(letters) <= 10 and stats["dead_letters_suppressed"] == 40 - len(letters)
    junk = next(letter for letter in letters if letter.payload["topic"] == meter.topic(topics.TELEMETRY))
    assert junk.payload["truncated"] and len(junk.payload["text"]) == JUNK_MAX_BYTES
    assert junk.payload["size"] > 5000


def test_the_dead_letter_budget_counts_per_device_and_reason_and_in_all():
    now = [0.0]
    budget = DeadLetterBudget(per_key=2, total=3, clock=lambda: now[0])

    assert [budget.take("a", "invalid_json") for _ in range(3)] == [0, 0, None]
    assert budget.take("a", "stale") == 0
    assert budget.take("b", "invalid_json") is None  # three kept this minute: the total
    now[0] = 60.0
    # A new minute; the next one kept for a key says how many like it were left out.
    assert budget.take("a", "invalid_json") == 1
    assert budget.take("b", "invalid_json") == 1
    assert budget.take("b", "invalid_json") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_message_that_may_be_good_later_is_kept_whole_and_replayed_from_the_admin(
    world, start_bridge, device_mqtt, admin_client, wait_for
):
    """env-001 was set inactive in the backend (its broker account not yet disabled) while it kept sending;
    once it is active again, staff replay what it sent meanwhile."""
    start_bridge()
    env = device_mqtt("env-001")
    Device.objects.filter(device_id="env-001").update(status=Device.Status.INACTIVE)
    raw = env.signed(topics.TELEMETRY, datagram(1, [("temperature", 21.5), ("humidity", 40.0)]))
    env.publish_raw(topics.TELEMETRY, raw)
    letter = wait_for(lambda: DeadLetter.objects.filter(task_name="mqtt.device_inactive").first(), timeout=20)
    assert letter.payload["text"].encode() == raw and not letter.payload["truncated"]
    Device.objects.filter(device_id="env-001").update(status=Device.Status.ACTIVE)

    response = admin_client.post(reverse(CHANGELIST), {"action": "replay", "_selected_action": [letter.pk]})

    assert response.status_code == 302
    wait_for(lambda: _stored(world, "env-001/humidity") == [40.0], timeout=20)
    assert _stored(world, "env-001/temperature") == [21.5]
    letter.refresh_from_db()
    assert letter.replay_count == 1 and letter.payload["last_replay"]["outcome"].startswith("stored as ingest batch")
    # Replayed again, it is applied once: its nonce was used by the first replay.
    assert dead_letter_replay(dead_letter_id=letter.pk) == "already applied (its nonce was used)"
    assert Reading.objects.filter(sensor__device__device_id="env-001").count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_dead_letter_kept_only_in_part_is_not_replayed(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    device_mqtt("env-001").publish_raw(topics.TELEMETRY, b"[" * 3000)
    letter = wait_for(lambda: DeadLetter.objects.filter(source="mqtt").first(), timeout=20)

    assert dead_letter_replay(dead_letter_id=letter.pk) == "not replayable: only the start of the message was kept"
    letter.refresh_from_db()
    assert letter.payload["last_replay"]["outcome"].startswith("not replayable")


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_message_that_is_not_utf8_is_kept_byte_for_byte(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    device_mqtt("env-001").publish_raw(topics.HELLO, b'{"fw_version": "\xff\x00"}')
    letter = wait_for(lambda: DeadLetter.objects.filter(source="mqtt").first(), timeout=20)

    assert "\x00" not in letter.payload["text"]
    assert base64.b64decode(letter.payload["base64"]) == b'{"fw_version": "\xff\x00"}'
