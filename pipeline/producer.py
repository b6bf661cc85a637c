"""A small producer for ``R.raw.D`` that attaches the producer identity and an event id (aiokafka).

Either a token (an OIDC-style JWT from your identity provider, header ``residency-identity``) or a
service account key (HMAC-SHA256 over the record, headers ``residency-key-id`` and
``residency-signature``). docs/producers.md shows the same headers from kcat and the Java client.

    async with ResidencyProducer(bootstrap, "eu", token=lambda: idp.current_token()) as producer:
        event_id = await producer.send("payments", b'{"payment_id": "p1", ...}', key=b"p1")
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.producer_identity import IDENTITY_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER, sign_record
from pipeline.screen import EVENT_ID_HEADER
from pipeline.topics import RegionTopics


def identity_headers(key: bytes | None, value: bytes, event_id: str, token: str | None = None,
                     account: tuple[str, bytes] | None = None) -> list[tuple[str, bytes]]:
    """The headers one record needs: ``event-id`` and either the token or the service account signature."""
    if (token is None) == (account is None):
        raise ValueError("give exactly one of a token or a service account (key id, secret)")
    headers = [(EVENT_ID_HEADER, event_id.encode("ascii"))]
    if token is not None:
        headers.append((IDENTITY_HEADER, token.encode("ascii")))
    else:
        key_id, secret = account
        headers += [(KEY_ID_HEADER, key_id.encode("ascii")),
                    (SIGNATURE_HEADER, sign_record(secret, key, value, event_id).encode("ascii"))]
    return headers


class ResidencyProducer:
    """Sends to ``<region>.raw.<dataset>`` with identity headers; acks=all and idempotence on."""

    def __init__(self, bootstrap: str, region: str, *, token: Callable[[], str] | str | None = None,
                 account: tuple[str, bytes] | None = None, **producer_options: Any) -> None:
        if (token is None) == (account is None):
            raise ValueError("give exactly one of token= or account=(key id, secret)")
        self.topics = RegionTopics(region)
        self._token = token
        self._account = account
        options = {"acks": "all", "enable_idempotence": True, **producer_options}
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)

    async def __aenter__(self) -> ResidencyProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    def _current_token(self) -> str | None:
        return self._token() if callable(self._token) else self._token

    async def send(self, dataset: str, value: bytes, key: bytes | None = None, event_id: str | None = None) -> str:
        """Send one record and wait for the broker's ack; returns its event id."""
        event_id = event_id or uuid.uuid4().hex
        headers = identity_headers(key, value, event_id, self._current_token(), self._account)
        await self._producer.send_and_wait(self.topics.raw(dataset), value, key=key, headers=headers)
        return event_id
