"""A realistic synthetic mix of ingress events, each labelled with the outcome the example policy implies.

Used by the demo, the integration tests and the benchmarks. Deterministic for a given seed.
Every personal value is synthetic but checksum-valid (Luhn cards, mod-97 IBANs), so detectors that
confirm candidates see the real thing.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from stdnum import iban as stdnum_iban

ALLOWED = ["DE", "FR", "NL", "ES", "IT", "SE", "PL", "AT"]
FOREIGN = ["US", "CN", "BR", "IN", "GB"]
FIRST = ["Anna", "Lukas", "Marie", "Jonas", "Sofia", "Mateo", "Elena", "Noah", "Lea", "Hugo"]
LAST = ["Müller", "Schmidt", "Dubois", "Jansen", "García", "Rossi", "Nowak", "Berg", "Lindqvist"]
DOMAINS = ["example.com", "mail.example.org", "post.example.net"]
IBAN_COUNTRIES = ["DE", "NL", "IT", "FR", "AT", "BE"]


def luhn_complete(partial: str) -> str:
    """``partial`` plus the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return partial + str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    prefix = rng.choice(["4", "51", "52", "55", "2221", "37", "6011"])
    length = 15 if prefix == "37" else 16
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return luhn_complete(body)


def _bban(rng: random.Random, country: str) -> str:
    digits = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    letters = lambda n: "".join(rng.choice(string.ascii_uppercase) for _ in range(n))  # noqa: E731
    return {"DE": lambda: digits(18), "NL": lambda: letters(4) + digits(10),
            "IT": lambda: letters(1) + digits(22), "FR": lambda: digits(23),
            "AT": lambda: digits(16), "BE": _belgian_bban(digits(10))}[country]()


def _belgian_bban(account: str):  # noqa: ANN202
    # Belgium's national check: the last two digits are the first ten mod 97 (97 for 0).
    return lambda: f"{account}{int(account) % 97 or 97:02d}"


def iban(rng: random.Random, country: str = "DE") -> str:
    """A checksum-valid IBAN (mod 97, and the national check where python-stdnum knows one)."""
    while True:
        bban = _bban(rng, country)
        numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
        candidate = f"{country}{98 - int(numeric) % 97:02d}{bban}"
        if stdnum_iban.is_valid(candidate):
            return candidate


def email(rng: random.Random, first: str, last: str) -> str:
    local = f"{first}.{last}".lower().encode("ascii", "ignore").decode() or "user"
    return f"{local}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"


@dataclass
class GeneratedEvent:
    event_id: str
    dataset: str
    key: bytes | None
    value: bytes
    expected: str  # cleared | held | rejected | deadletter
    secrets: list[str] = field(default_factory=list)  # raw values that must never reach a cleared topic
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _payment(rng: random.Random, n: int, kind: str) -> GeneratedEvent:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    card, mail, account = card_number(rng), email(rng, first, last), iban(rng, rng.choice(IBAN_COUNTRIES))
    country = rng.choice(FOREIGN if kind == "foreign" else ALLOWED)
    amount = round(rng.uniform(10_000, 250_000) if kind == "high" else rng.uniform(1, 9_500), 2)
    note_card = card_number(rng)
    doc = {
        "payment_id": f"pay-{n:08d}",
        "amount": amount,
        "currency": "EUR",
        "card": {"number": card, "holder": f"{first} {last}", "expiry": f"{rng.randint(1, 12):02d}/{rng.randint(27, 31)}"},
        "subject": {"email": mail, "iban": account, "country": country, "segment": rng.choice(["retail", "sme"])},
        "merchant": {"id": f"m-{rng.randint(1000, 9999)}", "category": rng.choice(["5411", "5812", "4111"]),
                     "city": rng.choice(["Berlin", "Paris", "Madrid", "Milano", "Utrecht"])},
        "note": f"Customer asked to refund to card {note_card} and confirm by mail",
        "items": [{"sku": f"SKU-{rng.randint(10000, 99999)}", "qty": rng.randint(1, 5),
                   "price": round(rng.uniform(1, 300), 2)} for _ in range(rng.randint(2, 6))],
        "channel": rng.choice(["web", "app", "pos"]),
        "created_at": f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
    }
    expected = {"normal": "cleared", "high": "held", "foreign": "rejected"}[kind]
    event_id = f"payments-{n:08d}"
    return GeneratedEvent(event_id, "payments", doc["payment_id"].encode(), orjson.dumps(doc), expected,
                          [card, mail, account, note_card, f"{first} {last}"],
                          [("event-id", event_id.encode())])


def _ticket(rng: random.Random, n: int, kind: str) -> GeneratedEvent:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    mail, contact = email(rng, first, last), email(rng, rng.choice(FIRST), rng.choice(LAST))
    account, card = iban(rng, "DE"), card_number(rng)
    country = rng.choice(FOREIGN if kind == "foreign" else ALLOWED)
    body = (f"Hello, my card {card[:4]} {card[4:8]} {card[8:12]} {card[12:]} was charged twice. "
            f"Please refund to {account} or write to {contact}. Order SKU-{rng.randint(10000, 99999)} "
            f"from 2026-11-{rng.randint(1, 28):02d}. Thanks!")
    doc = {
        "ticket_id": f"t-{n:08d}",
        "customer": {"name": f"{first} {last}", "email": mail, "country": country},
        "subject": "Double charge",
        "body": body,
        "priority": rng.choice(["low", "normal", "high"]),
        "tags": rng.sample(["billing", "refund", "card", "urgent", "vip"], 2),
    }
    expected = "held" if kind == "foreign" else "cleared"
    event_id = f"tickets-{n:08d}"
    return GeneratedEvent(event_id, "tickets", doc["ticket_id"].encode(), orjson.dumps(doc), expected,
                          [mail, contact, account, card, f"{first} {last}"],
                          [("event-id", event_id.encode())])


MALFORMED: list[tuple[str, bytes]] = [
    ("invalid_json", b'{"payment_id": "pay-x", "amount": '),
    ("not_utf8", b'{"payment_id": "\xff\xfe", "amount": 1}'),
    ("not_an_object", b'[1, 2, 3]'),
    ("contract_violation", b'{"payment_id": "pay-y", "amount": "lots", "currency": "EUR", "subject": {"country": "DE"}}'),
]


def _malformed(rng: random.Random, n: int) -> GeneratedEvent:
    _, value = MALFORMED[n % len(MALFORMED)]
    event_id = f"payments-bad-{n:08d}"
    return GeneratedEvent(event_id, "payments", None, value, "deadletter", [], [("event-id", event_id.encode())])


MIX = [("payment", "normal", 50), ("payment", "high", 6), ("payment", "foreign", 6),
       ("ticket", "normal", 25), ("ticket", "foreign", 5), ("malformed", "", 8)]


def generate(count: int, seed: int = 7) -> Iterator[GeneratedEvent]:
    """``count`` events of the realistic mix, deterministic for ``seed``."""
    rng = random.Random(seed)
    kinds = [(family, kind) for family, kind, weight in MIX for _ in range(weight)]
    for n in range(count):
        family, kind = rng.choice(kinds)
        if family == "payment":
            yield _payment(rng, n, kind)
        elif family == "ticket":
            yield _ticket(rng, n, kind)
        else:
            yield _malformed(rng, n)
