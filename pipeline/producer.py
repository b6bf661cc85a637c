"""A small producer for ``R.raw.D`` that attaches the producer identity and an event id (aiokafka).

Either a token bound to the record (an OIDC-style JWT carrying ``record_sha256``, header
``residency-identity``) or a service account key (HMAC-SHA256 over the record, headers
``residency-key-id`` and ``residency-signature``). Both cover the topic, event id, key and value, so a
proof copied onto another record does not verify. docs/producers.md shows the same from kcat and Java.

    async with ResidencyProducer(bootstrap, "eu", token=issuer.record_minter("svc-payments")) as producer:
        event_id = await producer.send("payments", b'{"payment_id": "p1", ...}', key=b"p1")
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.producer_identity import IDENTITY_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER, record_digest, sign_record
from pipeline.screen import EVENT_ID_HEADER
from pipeline.topics import RegionTopics

# Given the record's ``record_sha256`` (hex), returns a compact JWT that carries it as that claim.
TokenMinter = Callable[[str], str]


def identity_headers(topic: str, key: bytes | None, value: bytes, event_id: str,
                     token: TokenMinter | str | None = None,
                     account: tuple[str, bytes] | None = None) -> list[tuple[str, bytes]]:
    """The headers one record needs: ``event-id`` and either a bound token or the service account signature.

    ``token`` is a minter called with the record's digest; a string is sent as it is (already bound).
    """
    if (token is None) == (account is None):
        raise ValueError("give exactly one of a token or a service account (key id, secret)")
    headers = [(EVENT_ID_HEADER, event_id.encode("ascii"))]
    if token is not None:
        bound = token(record_digest(topic, key, value, event_id)) if callable(token) else token
        headers.append((IDENTITY_HEADER, bound.encode("ascii")))
    else:
        key_id, secret = account
        headers += [(KEY_ID_HEADER, key_id.encode("ascii")),
                    (SIGNATURE_HEADER, sign_record(secret, topic, key, value, event_id).encode("ascii"))]
    return headers


class ResidencyProducer:
    """Sends to ``<region>.raw.<dataset>`` with identity headers; acks=all and idempotence on."""

    def __init__(self, bootstrap: str, region: str, *, token: TokenMinter | None = None,
                 account: tuple[str, bytes] | None = None, **producer_options: Any) -> None:
        if (token is None) == (account is None):
            raise ValueError("give exactly one of token= (a minter of bound tokens) or account=(key id, secret)")
        if token is not None and not callable(token):
            raise ValueError("token= must mint a token per record (called with its record_sha256); "
                             "one token for every record is refused by the workers")
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

    async def send(self, dataset: str, value: bytes, key: bytes | None = None, event_id: str | None = None) -> str:
        """Send one record and wait for the broker's ack; returns its event id."""
        event_id = event_id or uuid.uuid4().hex
        topic = self.topics.raw(dataset)
        headers = identity_headers(topic, key, value, event_id, self._token, self._account)
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        return event_id
