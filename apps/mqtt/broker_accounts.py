"""The broker's accounts, kept in step with the devices through Mosquitto's dynamic-security plugin.

- The backend's own (MQTT_USERNAME, role telemetry-backend): subscribes to every device's inbound topics
  (also as shared subscriptions) and to $SYS, publishes commands.
- One per device: username the device id, password mqtt_password(its MQTT secret), a role of its own
  (device:<id>) that lets it publish on its five inbound topics and subscribe to its command topic, nothing
  else; disabled while the device is inactive. The password comes from what the backend stores, so any broker
  can be provisioned again from the database.
- The admin (MQTT_ADMIN_USERNAME), made with the broker's file, manages the rest.

Each account the backend manages carries a stamp in its textdescription, a digest of what it was made from
(password, role and ACLs, so the topic root too): a reconciliation compares stamps instead of reading
passwords back, and rebuilds what differs. Changes reach the broker at once (a task queued when a device is
saved or deleted, apps/mqtt/signals.py) and at every reconciliation (MQTT_ACCOUNTS_SYNC_INTERVAL_S), which also
repairs what the first missed: the broker down at that moment, a lost task, a broker that lost its file.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import uuid
from collections import Counter
from dataclasses import dataclass

import orjson
from django.conf import settings

from apps.devices.models import Device
from apps.mqtt import topics
from apps.mqtt.config import BrokerConfig, new_client
from apps.mqtt.signing import mqtt_password

logger = logging.getLogger(__name__)

BACKEND_ROLE = "telemetry-backend"
DEVICE_ROLE_PREFIX = "device:"
STAMP_PREFIX = "telemetry-"
# What no account may do unless a role allows it: publish or subscribe. Receiving what one may subscribe to,
# and unsubscribing, are allowed.
DEFAULT_ACL_ACCESS = {"publishClientSend": False, "publishClientReceive": True, "subscribe": False, "unsubscribe": True}


class BrokerAdminError(ConnectionError):
    """The broker could not be reached as its admin, refused the login, or did not answer in time."""


class Dynsec:
    """A short session as the broker's dynamic-security admin: commands go to the control topic in chunks, one
    chunk answered before the next is sent."""

    CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
    RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
    # The plugin writes its whole file after each command; small chunks let other traffic through in between.
    CHUNK = 50

    def __init__(self, config: BrokerConfig, *, timeout_s: float = 30.0) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self._responses: queue.Queue[bytes] = queue.Queue()
        self._ready = threading.Event()
        self._refused = ""
        self._client = new_client(client_id=f"telemetry-admin-{uuid.uuid4().hex[:8]}", config=config)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._ready.set()
        self._client.on_message = lambda client, userdata, message: self._responses.put(message.payload)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._ready.set()
        else:
            client.subscribe(self.RESPONSE_TOPIC, qos=1)

    def __enter__(self) -> Dynsec:
        where = f"{self.config.host}:{self.config.port}"
        self._client.connect_timeout = self.timeout_s
        try:
            self._client.connect(self.config.host, self.config.port, keepalive=max(self.config.keepalive_s, 5))
        except OSError as exc:
            raise BrokerAdminError(f"MQTT broker {where} unreachable: {exc}") from exc
        self._client.loop_start()
        if not self._ready.wait(self.timeout_s):
            self.__exit__()
            raise BrokerAdminError(f"MQTT broker {where} did not answer within {self.timeout_s} s")
        if self._refused:
            self.__exit__()
            raise BrokerAdminError(f"MQTT broker {where} refused the admin login ({self._refused}): MQTT_ADMIN_*")
        return self

    def __exit__(self, *exc_info) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def run(self, commands: list[dict]) -> list[dict]:
        """Each command's response, in order (an "error" member says it failed)."""
        responses: list[dict] = []
        for start in range(0, len(commands), self.CHUNK):
            chunk = commands[start : start + self.CHUNK]
            self._client.publish(self.CONTROL_TOPIC, orjson.dumps({"commands": chunk}), qos=1)
            try:
                answer = orjson.loads(self._responses.get(timeout=self.timeout_s))
            except queue.Empty:
                raise BrokerAdminError(f"the broker did not answer {len(chunk)} command(s) in time") from None
            responses.extend(answer.get("responses", []))
        return responses

    def clients(self) -> dict[str, dict]:
        """Every account, by username, with its textdescription, roles and whether it is disabled."""
        (response,) = self.run([{"command": "listClients", "verbose": True, "count": -1, "offset": 0}])
        return {client["username"]: client for client in response.get("data", {}).get("clients", [])}


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    rolename: str
    acls: tuple[tuple[str, str], ...]  # (acltype, topic), all allowing
    kind: str
    disabled: bool = False

    @property
    def stamp(self) -> str:
        made_of = orjson.dumps([self.password, self.rolename, self.acls])
        return f"{STAMP_PREFIX}{self.kind} {hashlib.sha256(made_of).hexdigest()[:24]}"

    def create_commands(self) -> list[dict]:
        """Make the account afresh, role first. Deleting a role that is not there is a harmless error."""
        commands = [
            {"command": "deleteRole", "rolename": self.rolename},
            {
                "command": "createRole",
                "rolename": self.rolename,
                "acls": [{"acltype": acltype, "topic": topic, "allow": True} for acltype, topic in self.acls],
            },
            {
                "command": "createClient",
                "username": self.username,
                "password": self.password,
                "textdescription": self.stamp,
                "roles": [{"rolename": self.rolename}],
            },
        ]
        if self.disabled:
            commands.append({"command": "disableClient", "username": self.username})
        return commands

    def converge(self, current: dict | None) -> list[dict]:
        """The commands that bring the broker's account (`current`, None when missing) to this one."""
        if current is None:
            return self.create_commands()
        if current.get("textdescription") != self.stamp:
            # Password, ACLs or topic root changed. Deleting the client also drops its connection.
            return [{"command": "deleteClient", "username": self.username}, *self.create_commands()]
        if bool(current.get("disabled")) != self.disabled:
            return [{"command": "disableClient" if self.disabled else "enableClient", "username": self.username}]
        return []


def device_account(device_id: str, secret: str, status: str, *, root: str) -> Account:
    acls = tuple(("publishClientSend", topics.device_topic(root, device_id, kind)) for kind in topics.INBOUND_KINDS)
    acls += (("subscribeLiteral", topics.device_topic(root, device_id, topics.COMMAND)),)
    acls += sparkplug_edge_node_acls(device_id)
    return Account(
        username=device_id,
        password=mqtt_password(secret),
        rolename=f"{DEVICE_ROLE_PREFIX}{device_id}",
        acls=acls,
        kind="device",
        disabled=status == Device.Status.INACTIVE,
    )


def sparkplug_edge_node_acls(device_id: str) -> tuple[tuple[str, str], ...]:
    """A device whose id is "{group}:{edge node}" is a Sparkplug edge node: it publishes its node's and its
    devices' births, data and deaths, and hears its commands and the hosts' STATE, within its own group and
    node only. (Whether SPARKPLUG_ENABLED is on or not, as for the backend's account.)"""
    group, _, edge_node = device_id.partition(":")
    if not group or not edge_node or ":" in edge_node:
        return ()
    return (
        ("publishClientSend", f"spBv1.0/{group}/+/{edge_node}"),
        ("publishClientSend", f"spBv1.0/{group}/+/{edge_node}/+"),
        ("subscribeLiteral", f"spBv1.0/{group}/NCMD/{edge_node}"),
        ("subscribePattern", f"spBv1.0/{group}/DCMD/{edge_node}/+"),
        ("subscribePattern", "spBv1.0/STATE/+"),
    )


def backend_account(*, root: str) -> Account | None:
    """The bridge's and the command publishers' account, or None when MQTT_USERNAME/MQTT_PASSWORD are unset."""
    if not settings.MQTT_USERNAME or not settings.MQTT_PASSWORD:
        return None
    acls = (
        ("publishClientSend", topics.device_topic(root, "+", topics.COMMAND)),
        ("subscribePattern", f"{root}/#"),
        ("subscribePattern", f"$share/+/{root}/#"),
        ("subscribePattern", "$SYS/#"),
    )
    # The Sparkplug host's, whether or not SPARKPLUG_ENABLED is on: every process computes the same accounts,
    # so turning it on or off does not rebuild them (and drop their connections).
    acls += (
        ("subscribePattern", "spBv1.0/#"),
        ("publishClientSend", "spBv1.0/+/NCMD/+"),
        ("publishClientSend", "spBv1.0/+/DCMD/+/+"),
        ("publishClientSend", f"spBv1.0/STATE/{settings.SPARKPLUG_HOST_ID}"),
    )
    return Account(
        username=settings.MQTT_USERNAME,
        password=settings.MQTT_PASSWORD,
        rolename=BACKEND_ROLE,
        acls=acls,
        kind="backend",
    )


def _reserved_usernames() -> set[str]:
    return {name for name in (settings.MQTT_USERNAME, settings.MQTT_ADMIN_USERNAME) if name}


def _wanted_accounts(*, root: str) -> list[Account]:
    reserved = _reserved_usernames()
    accounts = []
    backend = backend_account(root=root)
    if backend is None:
        logger.error("mqtt accounts: MQTT_USERNAME/MQTT_PASSWORD unset: the backend has no account on the broker")
    else:
        accounts.append(backend)
    for device_id, secret, status in Device.objects.order_by("device_id").values_list(
        "device_id", "ingest_key_hash", "status"
    ):
        if device_id in reserved:
            logger.error("mqtt accounts: device %s has the name of a backend account; it gets no account", device_id)
            continue
        accounts.append(device_account(device_id, secret, status, root=root))
    return accounts


def _default_acl_commands(dynsec: Dynsec) -> list[dict]:
    (response,) = dynsec.run([{"command": "getDefaultACLAccess"}])
    current = {acl["acltype"]: acl["allow"] for acl in response.get("data", {}).get("acls", [])}
    if current == DEFAULT_ACL_ACCESS:
        return []
    acls = [{"acltype": acltype, "allow": allow} for acltype, allow in DEFAULT_ACL_ACCESS.items()]
    return [{"command": "setDefaultACLAccess", "acls": acls}]


def _orphan_commands(current: dict, kept: set[str]) -> list[dict]:
    """Remove an account the backend made that has no device (or backend login) behind it any more."""
    username = current["username"]
    if username in kept or not str(current.get("textdescription", "")).startswith(STAMP_PREFIX):
        return []
    commands = [{"command": "deleteClient", "username": username}]
    commands += [{"command": "deleteRole", "rolename": role["rolename"]} for role in current.get("roles", [])]
    return commands


def _apply(dynsec: Dynsec, commands: list[dict]) -> int:
    """Run the commands; returns how many failed (logged), harmless ones (deleting what is not there) aside."""
    failed = 0
    for command, response in zip(commands, dynsec.run(commands), strict=False):
        error = response.get("error")
        if error and not (command["command"].startswith("delete") and "not found" in error.lower()):
            failed += 1
            logger.warning("mqtt accounts: %s %s failed: %s", command["command"], command.get("username", ""), error)
    return failed


def broker_accounts_reconcile(*, dynsec: Dynsec, root: str | None = None) -> dict[str, int]:
    """Bring every account the backend manages in line with the database: create what is missing, rebuild what
    changed, disable and enable, delete accounts of devices that are gone. Returns counts by what was done."""
    root = root or settings.MQTT_TOPIC_ROOT
    done: Counter = Counter()
    commands = _default_acl_commands(dynsec)
    current = dynsec.clients()
    wanted = _wanted_accounts(root=root)
    for account in wanted:
        changes = account.converge(current.get(account.username))
        if changes:
            done["created" if account.username not in current else "updated"] += 1
            commands += changes
    kept = {account.username for account in wanted} | _reserved_usernames()
    for info in current.values():
        removal = _orphan_commands(info, kept)
        if removal:
            done["deleted"] += 1
            commands += removal
    if commands:
        done["failed"] = _apply(dynsec, commands)
    done["accounts"] = len(wanted)
    return dict(done)


def broker_account_sync(*, dynsec: Dynsec, device_id: str, root: str | None = None) -> str:
    """Bring one device's account in line with the database (the device may be gone): what was done."""
    root = root or settings.MQTT_TOPIC_ROOT
    if device_id in _reserved_usernames():
        return "skipped: the name of a backend account"
    (response,) = dynsec.run([{"command": "getClient", "username": device_id}])
    current = response.get("data", {}).get("client") if not response.get("error") else None
    device = Device.objects.filter(device_id=device_id).values_list("ingest_key_hash", "status").first()
    if device is None:
        commands = _orphan_commands(current, set()) if current else []
        outcome = "deleted" if commands else "nothing to do"
    else:
        commands = device_account(device_id, *device, root=root).converge(current)
        outcome = ("created" if current is None else "updated") if commands else "nothing to do"
    if commands and _apply(dynsec, commands):
        outcome = f"{outcome} (with errors)"
    return outcome
