"""The approval console and its JSON API, served by every worker (Faust web views).

- ``GET /held/``: the inbox; fans out to every worker named in the assignor's metadata for the held
  table (``?local=1`` answers from this worker's partitions only). No GlobalTable: the held table is
  the one source of truth, and a summary replica would lag it.
- ``GET /held/{id}/``: one hold, routed to the worker that owns the event id's partition.
- ``POST /held/{id}/approve|reject`` with ``Authorization: Bearer <token>``: routed to the owner (body
  included), pre-validated with the agent's own rules; a refusal answers 4xx at once and is still
  written to ``R.approvals`` (token stripped, marked refused) so the agent audits it; an accepted
  decision goes to ``R.approvals`` and the call waits for the agent to apply it.
- ``GET /console/``: the single-page console.

Responses carry masked previews only; raw bytes and header values never leave the held table.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from yarl import URL

from pipeline.approval import rules, state as held_state
from pipeline.context import FleetContext
from pipeline.identity import IdentityError
from pipeline.outputs import Output, now_iso
from pipeline.sender import send_all

STATIC = Path(__file__).parent / "static"
FORWARDED = "X-Residency-Forwarded"
MAX_BODY = 16_384
WAIT_S = 20.0


def _json(view: View, data: Any, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(data), content_type="application/json", status=status)


def _error(view: View, status: int, code: str, message: str, **extra: Any) -> Response:
    return _json(view, {"error": code, "message": message, **extra}, status)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() or None if header[:7].lower() == "bearer " else None


class Console:
    def __init__(self, app: faust.App, ctx: FleetContext) -> None:
        self.app = app
        self.ctx = ctx

    def _ident(self, url: URL | str) -> tuple[str, int]:
        url = URL(str(url))
        return (url.host or "", int(url.port or 80))

    def owner(self, event_id: str) -> URL | None:
        try:
            return self.app.router.key_store(self.ctx.held.name, event_id.encode())
        except (KeyError, IndexError):
            return None

    async def forward(self, view: View, request: Request, dest: URL, body: bytes | None) -> Response:
        """Send the call to the worker that owns the event id (Faust's router drops request bodies)."""
        if request.headers.get(FORWARDED):
            return _error(view, 503, "owner_unavailable", "partition ownership is moving; try again shortly")
        headers = {FORWARDED: "1", "Accept": "application/json"}
        if request.headers.get("Authorization"):
            headers["Authorization"] = request.headers["Authorization"]
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = request.url.with_host(dest.host).with_port(dest.port)
        try:
            async with self.app.http_client.request(method=request.method, url=url, headers=headers,
                                                    data=body) as response:
                return view.bytes(await response.read(), content_type="application/json", status=response.status)
        except (OSError, asyncio.TimeoutError):
            return _error(view, 503, "owner_unavailable", "the worker that owns this event did not answer")

    def local(self, status: str, dataset: str | None) -> list[dict[str, Any]]:
        items = []
        for _key, value in list(self.ctx.held.items()):
            st = held_state.decode(value)
            if st is None or (status != "all" and st["status"] != status) or (dataset and st["dataset"] != dataset):
                continue
            plan = self.ctx.plans.get(st["dataset"] or "")
            approval = plan.rules.approval if plan else None
            items.append(held_state.summary(st, approval.required_approvals if approval else None))
        return items

    async def inbox(self, request: Request) -> dict[str, Any]:
        status = request.query.get("status", "held")
        dataset = request.query.get("dataset")
        items = self.local(status, dataset)
        missing: list[str] = []
        if not request.query.get("local"):
            try:
                hosts = list(self.app.router.table_metadata(self.ctx.held.name))
            except (KeyError, AttributeError):
                hosts = []
            me = self._ident(self.app.conf.canonical_url)
            others = [h for h in hosts if self._ident(h) != me]
            results = await asyncio.gather(*(self._remote(h, status, dataset) for h in others))
            for host, result in zip(others, results, strict=True):
                if result is None:
                    missing.append(str(host))
                else:
                    items.extend(result)
        items.sort(key=lambda i: i["held_at_ms"])
        return {"held": items, "complete": not missing, "missing": missing}

    async def _remote(self, host: str, status: str, dataset: str | None) -> list[dict[str, Any]] | None:
        url = URL(str(host)).with_path("/held/").with_query({"local": "1", "status": status,
                                                              **({"dataset": dataset} if dataset else {})})
        try:
            async with self.app.http_client.get(url, headers={FORWARDED: "1"}, timeout=5) as response:
                if response.status != 200:
                    return None
                return orjson.loads(await response.read()).get("held", [])
        except (OSError, asyncio.TimeoutError, ValueError):
            return None

    def show(self, event_id: str) -> dict[str, Any] | None:
        st = held_state.decode(self.ctx.held.get(event_id.encode()))
        if st is None:
            return None
        plan = self.ctx.plans.get(st["dataset"] or "")
        return held_state.public_view(st, plan.rules.approval if plan else None)

    async def decide(self, view: View, request: Request, event_id: str, action: str, raw: bytes) -> Response:
        """Pre-validate with the agent's rules, then write the decision to ``R.approvals``."""
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return _error(view, 422, "malformed_decision", "the body must be a JSON object", event_id=event_id)
        decision = {
            "decision_id": str(body.get("decision_id") or f"d-{uuid.uuid4().hex}"),
            "event_id": event_id, "action": action, "token": _bearer(request),
            "justification": body.get("justification"), "payload_sha256": body.get("payload_sha256"),
            "policy_hash": body.get("policy_hash"), "at": now_iso(), "via": "api",
        }
        current = held_state.decode(self.ctx.held.get(event_id.encode()))
        plan = self.ctx.plans.get((current or {}).get("dataset") or "")
        try:
            identity: Any = self.ctx.verifier.verify(decision["token"])
        except IdentityError as exc:
            identity = exc
        verdict = rules.check_decision(current, decision, plan.rules.approval if plan else None, identity,
                                       held_state.now_ms())
        ids = {"event_id": event_id, "decision_id": decision["decision_id"]}
        if verdict.kind == "refuse":
            refused = {**decision, "token": None,
                       "refused": {"code": verdict.code, "message": verdict.message, "approver": verdict.approver}}
            await self.send(event_id, refused)
            return _error(view, verdict.http_status, verdict.code, verdict.message, **ids)
        decider = self.ctx.extras["decider"]
        waiter: asyncio.Future = asyncio.get_running_loop().create_future()
        decider.waiters[decision["decision_id"]] = waiter
        try:
            await self.send(event_id, decision)
            result = await asyncio.wait_for(waiter, timeout=WAIT_S)
        except asyncio.TimeoutError:
            return _json(view, {"status": "pending", "message": "accepted; not applied yet", **ids}, 202)
        finally:
            decider.waiters.pop(decision["decision_id"], None)
        if result.get("status") == "refused":
            return _error(view, rules.REFUSALS.get(result["error"], 409), result["error"], result["message"], **ids)
        return _json(view, {**result, **ids})

    async def send(self, event_id: str, decision: dict[str, Any]) -> None:
        await send_all(self.ctx.producer, [Output(self.ctx.topics.approvals, event_id.encode(),
                                                  orjson.dumps(decision), [])])


def register_console(app: faust.App, ctx: FleetContext) -> None:
    console = Console(app, ctx)

    @app.page("/held/")
    class HeldList(View):
        async def get(self, request: Request) -> Response:
            return _json(self, await console.inbox(request))

    @app.page("/held/{event_id}/")
    class HeldOne(View):
        async def get(self, request: Request, event_id: str) -> Response:
            dest = console.owner(event_id)
            if dest is None:
                return _error(self, 503, "owner_unavailable", "no worker owns this event's partition yet")
            if console._ident(dest) != console._ident(app.conf.canonical_url):  # noqa: SLF001
                return await console.forward(self, request, dest, None)
            view = console.show(event_id)
            if view is None:
                return _error(self, 404, "unknown_event", "no held event with this id", event_id=event_id)
            return _json(self, view)

    @app.page("/held/{event_id}/{action}")
    class HeldDecision(View):
        async def post(self, request: Request, event_id: str, action: str) -> Response:
            if action not in rules.ACTIONS:
                return _error(self, 404, "not_found", "use /approve or /reject")
            raw = await self.read_request_content(request)
            if len(raw) > MAX_BODY:
                return _error(self, 413, "malformed_decision", "the body is too large")
            dest = console.owner(event_id)
            if dest is None:
                return _error(self, 503, "owner_unavailable", "no worker owns this event's partition yet")
            if console._ident(dest) != console._ident(app.conf.canonical_url):  # noqa: SLF001
                return await console.forward(self, request, dest, raw)
            return await console.decide(self, request, event_id, action, raw)

    page = (STATIC / "index.html").read_bytes()

    @app.page("/console/")
    class ConsolePage(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(page, content_type="text/html",
                              headers={"Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                                  "style-src 'self' 'unsafe-inline'",
                                       "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

    @app.task
    async def fetch_held_metadata() -> None:
        # key_store asks the producer for the changelog's partition count: fetch its metadata first.
        producer = app.producer._ensure_producer()  # noqa: SLF001 - Faust exposes no public call
        await producer.partitions_for(ctx.held.changelog_topic.get_topic_name())
