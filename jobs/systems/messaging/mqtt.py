"""MQTT (Mosquitto) through paho-mqtt, protocol 5 at QoS 1: a publish is confirmed by its
PUBACK; a consumer keeps a persistent session (clean start off) and acknowledges manually,
so what it has not acknowledged the broker sends again. The message id travels as the user
property `message_id`."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from jobs.systems.base import UnsupportedSystem
from jobs.systems.messaging.brokers import BrokerError, Message, Outgoing
from jobs.systems.messaging.connection import MessagingConnectionSettings

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600  # a stopped consumer's messages wait this long
CONFIRM_TIMEOUT = 30.0


class MqttBroker:
    def __init__(
        self, settings: MessagingConnectionSettings, *, topic: str = "", client_id: str = ""
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.topic
        self.client_id = client_id
        self._client: mqtt.Client | None = None
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = False
        self._consumer = False

    def _open(self, *, consumer: bool) -> mqtt.Client:
        if self._client is not None and self._client.is_connected():
            return self._client
        self._forget()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            # A consumer's session is found again by its client id; a producer's is throwaway.
            client_id=self.client_id if consumer else f"gw-pub-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
            manual_ack=consumer,
            reconnect_on_failure=False,
        )
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.password)
        client.on_connect = lambda c, u, f, rc, p: self._connected.set()
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS if consumer else 0
        self._connected.clear()
        try:
            client.connect(
                self.settings.host,
                self.settings.port,
                keepalive=30,
                clean_start=not consumer,
                properties=properties,
            )
        except OSError as exc:
            raise BrokerError(f"MQTT {self.settings.host}:{self.settings.port}: {exc!r}") from exc
        client.loop_start()
        if not self._connected.wait(10):
            client.loop_stop()
            raise BrokerError(f"MQTT {self.settings.host}:{self.settings.port}: no CONNACK")
        self._client = client
        self._consumer = consumer
        self._subscribed = False
        return client

    # -- producer ----------------------------------------------------------------------------
    def publish(self, messages: list[Outgoing]) -> None:
        client = self._open(consumer=False)
        infos = []
        for message in messages:
            topic = message.destination or self.topic
            if not topic:
                raise UnsupportedSystem("MQTT: no topic to publish to (connection 'topic').")
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = [
                ("message_id", message.message_id),
                *message.headers.items(),
            ]
            infos.append(client.publish(topic, message.body, qos=1, properties=properties))
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        for info in infos:
            # PUBACK: the broker has the message (and will deliver it to the subscribers' sessions).
            info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
            if not info.is_published():
                self._forget()
                raise BrokerError(
                    f"MQTT broker did not confirm message {info.mid} (rc {info.rc}): "
                    "connection lost or too slow"
                )

    # -- consumer ----------------------------------------------------------------------------
    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        props = getattr(msg, "properties", None)
        user = dict(getattr(props, "UserProperty", []) or [])
        self._inbox.put(
            Message(
                body=msg.payload,
                message_id=user.pop("message_id", ""),
                subject=msg.topic,
                redelivered=bool(msg.dup),
                headers=user,
                handle=msg.mid,
            )
        )

    def receive(self, max_count: int, timeout: float) -> list[Message]:
        if not self.topic:
            raise UnsupportedSystem("MQTT: the consumer has no topic (connection 'topic').")
        if not self.client_id:
            raise UnsupportedSystem(
                "MQTT: the consumer needs a client id for its persistent session."
            )
        client = self._open(consumer=True)
        if not self._subscribed:
            result, _ = client.subscribe(self.topic, qos=1)
            if result != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerError(f"MQTT subscribe to {self.topic} failed (rc {result}).")
            self._subscribed = True
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(out) < max_count:
            left = deadline - time.monotonic()
            try:
                out.append(self._inbox.get(timeout=left) if left > 0 else self._inbox.get_nowait())
            except queue.Empty:
                break
        if not client.is_connected():
            self._forget()
            raise BrokerError("MQTT connection lost while consuming.")
        return out

    def ack(self, messages: list[Message]) -> None:
        client = self._client
        if client is None or not client.is_connected():
            self._forget()
            raise BrokerError("MQTT connection lost before the acknowledgement.")
        for message in messages:
            client.ack(message.handle, 1)

    def check(self) -> str:
        self._open(consumer=False)
        self._forget()
        return f"MQTT {self.settings.host}:{self.settings.port} reachable"

    def _forget(self) -> None:
        client, self._client = self._client, None
        self._inbox = queue.Queue()  # unacknowledged: the session delivers them again
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def close(self) -> None:
        self._forget()
