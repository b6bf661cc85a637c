"""The benchmark's events: the demo generator's mix, padded with PII-free context to ~1 KB.

The generator's events average ~500 bytes (payments ~560, tickets ~370, malformed ~40). Real
ingress events carry more than the fields a policy cares about, so each parsed payment or ticket
gets a ``context`` object (user agent, referrer, locale, app version, a free-text description),
all free of personal data: the expected outcome of every event is unchanged, while the screen
agent parses, walks and scans the extra strings like any other. Malformed events stay as they are.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

from pipeline.generator import GeneratedEvent, generate

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "ShopApp/5.12 (Android 14; Pixel 8; build release) okhttp/4.12",
]
REFERRERS = ["https://shop.example.com/checkout/payment?step=confirm&ref=newsletter-spring",
             "https://shop.example.com/cart?coupon=SPRING&utm_source=mail&utm_campaign=returning",
             "https://help.example.com/contact/billing?topic=double-charge&lang=en"]
LOCALES = ["de-DE", "fr-FR", "nl-NL", "es-ES", "it-IT", "sv-SE", "pl-PL", "de-AT"]
DESCRIPTIONS = [
    "Order placed through the mobile checkout after a promotion; the basket was saved from a previous visit "
    "and restored on login. Delivery preference standard, gift wrapping declined, invoice by email requested.",
    "Returning customer, basket built from the wishlist; one item was out of stock and replaced by the "
    "suggested alternative. Express delivery selected at checkout, packaging without plastic where possible.",
    "Support request opened from the order history page after the confirmation email; the customer chose the "
    "billing category and attached no files. Follow-up expected within the next business day.",
]
CHANNELS = ["organic", "newsletter", "affiliate", "paid-search", "direct"]


def _context(rng: random.Random) -> dict[str, object]:
    return {
        "user_agent": rng.choice(USER_AGENTS),
        "referrer": rng.choice(REFERRERS),
        "locale": rng.choice(LOCALES),
        "app_version": f"5.{rng.randint(0, 14)}.{rng.randint(0, 9)}",
        "acquisition": rng.choice(CHANNELS),
        "description": rng.choice(DESCRIPTIONS),
        "flags": {"gift": rng.random() < 0.1, "express": rng.random() < 0.3, "first_order": rng.random() < 0.2},
    }


def bench_events(count: int, seed: int = 7) -> Iterator[GeneratedEvent]:
    """``count`` events of the generator's mix, each parseable one padded to ~1 KB (see module doc)."""
    rng = random.Random(seed ^ 0x5EED)
    for event in generate(count, seed):
        if event.expected != "deadletter":
            doc = orjson.loads(event.value)
            doc["context"] = _context(rng)
            event.value = orjson.dumps(doc)
        yield event
