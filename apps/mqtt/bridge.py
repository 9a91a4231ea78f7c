"""The MQTT bridge: device messages in, ingest batches and device state out, nothing lost on a crash, and no
message costing another its place.

How it stays lossless:
- It keeps a persistent session (MQTT 5, clean start off, a session expiry): messages that arrive while it
  is down, and messages it received but never acknowledged, are held by the broker and delivered again.
- It acknowledges (PUBACK) a message only after what the message means is committed: telemetry once the
  ingest batch holding it is committed and queued (batch_create), other messages once their effect is.
  Acknowledgements go out in the order messages arrived, as MQTT asks.
- Everything it writes is idempotent, so a message delivered again after a crash does no harm: v3 messages
  by their nonce, datagrams by (device, seq) and readings by (sensor, ts); status, hello and acks converge.

How one message never costs another: each message is checked and normalised on its own as it arrives (a bad
one becomes a dead letter at once), and a micro-batch that cannot be created is split in halves until only
the message(s) at fault are left, which become dead letters; the rest are stored and acknowledged.

Threads: paho's network loop runs in its own thread and only puts messages on a queue; all database work
happens in the thread that called run(), which owns the database connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.mqtt import broker_stats, services, topics
from apps.mqtt.config import BrokerConfig, accepts_anonymous, broker_config, new_client
from apps.mqtt.envelope import nonces_purge
from apps.mqtt.messages import Inbound, MessageRejected, Reason, Repeated
from apps.mqtt.rejects import UNKNOWN_DEVICE_KEY, DeadLetterBudget, dead_letter_record
from apps.mqtt.services import Checked, DeviceDirectory
from apps.operations import metrics
from apps.sparkplug import host as sparkplug

logger = logging.getLogger(__name__)

# Errors that mean "the database is not there right now": wait and try the same work again.
DATABASE_DOWN = (OperationalError, InterfaceError)
HOUSEKEEPING_INTERVAL_S = 60.0


@dataclass
class Pending:
    """A received message waiting for its acknowledgement."""

    mid: int
    qos: int
    generation: int
    done: bool = False


@dataclass
class Entry:
    """A telemetry message in a micro-batch."""

    checked: Checked
    pending: Pending
    committed: bool = False  # its batch is committed, or it is a dead letter: done with


class MicroBatch:
    """Telemetry waiting to become ingest batches: one of the fresh messages, one of the old news."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.entries: list[Entry] = []
        self.readings = 0

    def add(self, checked: Checked, pending: Pending) -> None:
        self.entries.append(Entry(checked, pending))
        self.readings += len(checked.readings)

    def groups(self) -> list[list[Entry]]:
        fresh = [entry for entry in self.entries if not entry.checked.envelope.stale]
        stale = [entry for entry in self.entries if entry.checked.envelope.stale]
        return [group for group in (fresh, stale) if group]

    def __len__(self) -> int:
        return self.readings


@dataclass
class BridgeSettings:
    client_id: str
    topic_root: str
    batch_max_readings: int
    batch_max_wait_s: float
    session_expiry_s: int
    receive_maximum: int
    shared_group: str = ""
    stats_interval_s: float = 60.0

    @classmethod
    def from_settings(cls, **overrides) -> BridgeSettings:
        values = {
            "client_id": settings.MQTT_CLIENT_ID,
            "topic_root": settings.MQTT_TOPIC_ROOT,
            "batch_max_readings": settings.MQTT_BATCH_MAX_READINGS,
            "batch_max_wait_s": settings.MQTT_BATCH_MAX_WAIT_S,
            "session_expiry_s": settings.MQTT_SESSION_EXPIRY_S,
            "receive_maximum": min(settings.MQTT_RECEIVE_MAXIMUM, 65535),
            "shared_group": settings.MQTT_SHARED_GROUP,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


class Bridge:
    def __init__(self, options: BridgeSettings | None = None, broker: BrokerConfig | None = None) -> None:
        self.options = options or BridgeSettings.from_settings()
        self.broker = broker or broker_config()
        self.stats: Counter = Counter()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._inbox: queue.Queue[Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._generation = 0  # one more per (re)connection; acknowledgements only go to the current one
        self._pending: deque[Pending] = deque()
        self._batch: MicroBatch | None = None
        self._directory = DeviceDirectory()
        self._budget = DeadLetterBudget()
        self._device_subscription = None  # the mid of the SUBSCRIBE for the device topics
        self._connectivity_check_due = False
        self._last_connectivity_check = 0.0
        self._client = self._make_client()

    # --- connection (paho's thread) -------------------------------------------------------------------------

    def _make_client(self):
        client = new_client(client_id=self.options.client_id, config=self.broker, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(settings.MQTT_RECONNECT_MIN_DELAY_S, settings.MQTT_RECONNECT_MAX_DELAY_S)
        sparkplug.set_will(client)
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error("mqtt bridge: the broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        # Subscribing again is harmless when the broker kept the session, and needed when it did not.
        filters = topics.subscriptions(self.options.topic_root, self.options.shared_group)
        _, self._device_subscription = client.subscribe([(topic, 1) for topic in filters])
        # The broker's statistics are QoS 0 and outside the session: nothing to acknowledge or keep.
        client.subscribe([(topic, 0) for topic in broker_stats.TOPICS])
        sparkplug.on_connect(client)
        logger.info(
            "mqtt bridge: connected to %s:%s as %s (session %s)",
            self.broker.host,
            self.broker.port,
            self.options.client_id,
            "resumed" if flags.session_present else "new",
        )
        self.stats["connections"] += 1
        if self.stats["connections"] > 1:
            metrics.MQTT_RECONNECTS.inc()
        metrics.MQTT_CONNECTED.set(1)
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [code for code in reason_codes if code.is_failure]
        if mid != self._device_subscription:
            if refused:
                logger.warning("mqtt bridge: the broker refused its statistics ($SYS): no broker metrics")
            return
        if refused:
            logger.error("mqtt bridge: the broker refused subscriptions: %s", refused)
        else:
            group = f" (shared group {self.options.shared_group})" if self.options.shared_group else ""
            logger.info("mqtt bridge: subscribed to the device topics under %s/%s", self.options.topic_root, group)
            self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        metrics.MQTT_CONNECTED.set(0)
        self.connected.clear()
        self.subscribed.clear()
        if not self._stop.is_set():
            logger.warning("mqtt bridge: disconnected (%s); reconnecting with backoff", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        received_at = timezone.now()
        if broker_stats.is_broker_topic(message.topic):
            broker_stats.record(message.topic, message.payload)
            return
        parsed = topics.parse(message.topic, self.options.topic_root)
        device_id, kind = (
            parsed if parsed else ("", sparkplug.KIND if sparkplug.is_sparkplug_topic(message.topic) else "")
        )
        self._inbox.put(
            Inbound(
                topic=message.topic,
                device_id=device_id,
                kind=kind,
                payload=message.payload,
                received_at=received_at,
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
                dup=bool(message.dup),
            )
        )

    # --- the loop (the caller's thread) -----------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Connect, then handle messages until stop(). On the way out the open micro-batch is committed and
        acknowledged, so a graceful stop leaves nothing for the broker to deliver again."""
        if settings.MQTT_DEVICE_AUTH == "broker":
            self._check_the_broker_authenticates()
            if self._stop.is_set():
                return
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.options.session_expiry_s
        properties.ReceiveMaximum = self.options.receive_maximum
        self._client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.broker.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()
        last_stats = time.monotonic()
        last_idle_housekeeping = last_housekeeping = 0.0
        try:
            while not self._stop.is_set():
                message = self._next_message()
                if message is not None:
                    self._with_database(lambda message=message: self._handle(message))
                if self._batch is not None and self._batch_due():
                    self._with_database(self._flush)
                self._acknowledge()
                now = time.monotonic()
                if self._connectivity_check_due and now - self._last_connectivity_check >= 1.0:
                    self._request_connectivity_check()
                if message is None and now - last_idle_housekeeping >= 5:
                    close_old_connections()
                    last_idle_housekeeping = now
                if now - last_housekeeping >= HOUSEKEEPING_INTERVAL_S:
                    self._with_database(nonces_purge)
                    last_housekeeping = now
                if now - last_stats >= self.options.stats_interval_s:
                    logger.info("mqtt bridge: %s", self.stats_line())
                    last_stats = now
        finally:
            self._shutdown()

    def _check_the_broker_authenticates(self) -> None:
        """With MQTT_DEVICE_AUTH=broker the bridge believes the topic about who sent a message: that only holds
        if the broker lets no one in without logging in. Waits (with backoff) while the broker does not answer."""
        delay = 1.0
        while not self._stop.is_set():
            anonymous = accepts_anonymous(self.broker)
            if anonymous is not None:
                break
            logger.warning("mqtt bridge: the broker does not answer; checking it again in %.0f s", delay)
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)
        else:
            return
        where = f"{self.broker.host}:{self.broker.port}"
        if not anonymous:
            logger.info("mqtt bridge: the broker at %s refuses anonymous clients", where)
        elif settings.MQTT_INSECURE_BROKER:
            logger.warning(
                "mqtt bridge: MQTT_DEVICE_AUTH=broker with a broker that accepts anonymous clients (%s), allowed by "
                "MQTT_INSECURE_BROKER=true: anyone who reaches it can publish as any device",
                where,
            )
        else:
            raise ImproperlyConfigured(
                f"MQTT_DEVICE_AUTH=broker, but the broker at {where} accepts anonymous clients, so anyone could "
                "publish as any device. Require logins on the broker (docker/mosquitto.conf does), use "
                "MQTT_DEVICE_AUTH=signature, or set MQTT_INSECURE_BROKER=true for an experiment."
            )

    def _next_message(self) -> Inbound | None:
        if self._batch is not None:
            timeout = max(0.0, self._batch.started + self.options.batch_max_wait_s - time.monotonic())
        else:
            timeout = 0.25
        try:
            return self._inbox.get(timeout=min(timeout, 0.25))
        except queue.Empty:
            return None

    def _batch_due(self) -> bool:
        batch = self._batch
        return (
            len(batch) >= self.options.batch_max_readings
            or time.monotonic() - batch.started >= self.options.batch_max_wait_s
        )

    def _with_database(self, work) -> bool:
        """Run `work`, and while the database is unreachable, wait (1, 2, 4 ... 30 s) and run it again. Nothing
        is acknowledged meanwhile, so the broker keeps holding what arrives. False when the bridge was asked
        to stop before the work got done (the broker delivers its messages again)."""
        delay = 1.0
        while True:
            try:
                work()
                return True
            except DATABASE_DOWN as exc:
                self.stats["database_errors"] += 1
                logger.warning("mqtt bridge: database unavailable (%s); retrying in %.0f s", exc, delay)
                connection.close()
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, 30.0)

    def _handle(self, message: Inbound) -> None:
        self.stats["received"] += 1
        pending = Pending(mid=message.mid, qos=message.qos, generation=message.generation)
        try:
            self._dispatch(message, pending)
        except MessageRejected as rejected:
            self._reject(message, rejected.reason, rejected.detail, errors=rejected.errors)
            pending.done = True
        except DATABASE_DOWN:
            raise
        except Exception as exc:  # a bug must cost one message (kept as a dead letter), never the bridge
            self._fail(message, exc)
            pending.done = True
        self._pending.append(pending)

    def _dispatch(self, message: Inbound, pending: Pending) -> None:
        if message.kind:
            self.stats[f"received_{message.kind.replace('/', '_')}"] += 1
        if message.kind == sparkplug.KIND:
            checked = sparkplug.message_route(message, self._client)
            if checked is None:
                pending.done = True
                return
        else:
            checked = services.message_check(message, self._directory, topic_root=self.options.topic_root)
        if message.kind in (topics.TELEMETRY, sparkplug.KIND):
            if self._batch is None:
                self._batch = MicroBatch()
            self._batch.add(checked, pending)
            return
        if message.kind == topics.STATUS:
            # This device's readings received before its status go into a batch first, so they are not
            # taken for a sign of life after it said it went offline.
            self._with_database(self._flush)
            self._connectivity_check_due = True
        try:
            result = services.state_apply(checked)
        except Repeated:
            self._repeated(message)
        else:
            if message.kind == topics.COMMAND_ACK and result is False:
                self.stats["command_acks_ignored"] += 1
            self._accepted(checked)
        pending.done = True

    def _flush(self) -> None:
        batch = self._batch
        if batch is None:
            return
        for group in batch.groups():
            self._commit(group)
        for entry in batch.entries:
            entry.pending.done = True
        self._batch = None

    def _commit(self, entries: list[Entry]) -> None:
        """Store these messages as one ingest batch. When that fails on what they carry, try each half on its
        own, down to single messages: only a message that cannot be stored alone becomes a dead letter.
        Entries already committed (the database went away half-way) are not stored again."""
        entries = [entry for entry in entries if not entry.committed]
        if not entries:
            return
        try:
            created, repeated = services.telemetry_store([entry.checked for entry in entries])
        except DATABASE_DOWN:
            raise
        except Exception as exc:
            if isinstance(exc, DatabaseError):
                connection.close()  # the failed statement may have left the connection unusable
            if len(entries) == 1:
                self._fail(entries[0].checked.message, exc)
                entries[0].committed = True
                return
            self.stats["batches_split"] += 1
            middle = len(entries) // 2
            self._commit(entries[:middle])
            self._commit(entries[middle:])
            return
        repeated_ids = {id(checked) for checked in repeated}
        for entry in entries:
            entry.committed = True
            if id(entry.checked) in repeated_ids:
                self._repeated(entry.checked.message)
            else:
                self._accepted(entry.checked)
        if created is not None:
            self.stats["batches"] += 1
            self.stats["readings"] += created.received
            logger.debug("mqtt bridge: batch %s with %s readings", created.pk, created.received)

    def _accepted(self, checked: Checked) -> None:
        message = checked.message
        outcome = (
            "accepted" if checked.envelope.version >= 3 or settings.MQTT_DEVICE_AUTH == "broker" else "accepted_v2"
        )
        if checked.envelope.stale:
            outcome = "stale_stored"
        self.stats[outcome] += 1
        metrics.MQTT_MESSAGES.labels(message.kind, outcome).inc()

    def _repeated(self, message: Inbound) -> None:
        """A nonce seen before. Sent again by the broker (DUP: the bridge stopped before acknowledging a
        message it had applied) it is only counted; otherwise it is a replay, kept as a dead letter."""
        if message.dup:
            self.stats["redelivered"] += 1
            metrics.MQTT_MESSAGES.labels(message.kind, "redelivered").inc()
        else:
            self._reject(message, Reason.REPLAYED, "Its nonce was used already: nothing was applied.")

    def _acknowledge(self) -> None:
        """PUBACK, in arrival order, every message whose work is committed. Messages of an earlier connection
        are not acknowledged: the broker delivers them again on this one (their work is idempotent)."""
        generation = self._generation
        while self._pending and self._pending[0].done:
            pending = self._pending.popleft()
            if pending.qos > 0 and pending.generation == generation:
                self._client.ack(pending.mid, pending.qos)
                self.stats["acknowledged"] += 1

    def _fail(self, message: Inbound, exc: Exception) -> None:
        logger.error("mqtt bridge: failed on a message from %s", message.topic, exc_info=exc)
        trace = "".join(traceback.format_exception(exc))
        self._reject(message, Reason.ERROR, f"{type(exc).__name__}: {exc}", trace=trace)

    def _reject(
        self, message: Inbound, reason: str, detail: str, *, errors: dict | None = None, trace: str = ""
    ) -> None:
        self.stats[f"dead_letter_{reason}"] += 1
        self.stats["dead_letters"] += 1
        metrics.MQTT_MESSAGES.labels(message.kind or "unknown", reason).inc()
        device_key = message.device_id if reason != Reason.UNKNOWN_DEVICE and message.device_id else UNKNOWN_DEVICE_KEY
        suppressed_before = self._budget.take(device_key, reason)
        if suppressed_before is None:
            self.stats["dead_letters_suppressed"] += 1
            return
        logger.warning("mqtt bridge: dead letter from %s: %s: %s", message.topic, reason, detail)
        dead_letter_record(
            message, reason=reason, detail=detail, errors=errors, traceback=trace, suppressed_before=suppressed_before
        )

    def _request_connectivity_check(self) -> None:
        try:
            services.request_connectivity_check()
        except Exception:  # the beat sweep runs anyway; this only makes it sooner
            logger.warning("mqtt bridge: could not queue a connectivity check", exc_info=True)
        self._connectivity_check_due = False
        self._last_connectivity_check = time.monotonic()

    def _shutdown(self) -> None:
        try:
            if self._batch is not None and not self._with_database(self._flush):
                logger.warning("mqtt bridge: stopped with an uncommitted batch; the broker delivers it again")
            self._acknowledge()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            connection.close()
            logger.info("mqtt bridge: stopped; %s", self.stats_line())

    def stats_line(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted(self.stats.items())) or "nothing yet"
