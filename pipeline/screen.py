"""The screening decision: a pure function from one raw record and a compiled plan to a Decision.

Order: event id, producer identity, size, parse, record contract, residency, masking, detection, hold
rules, then the egress profiles' extra masking of a cleared record. Any error
in detection, masking or rule evaluation ends in held or dead-letter, never in cleared (fail closed).
No reason or detail ever quotes the payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from pipeline import detection
from pipeline.detection import DetectionBudgetExceeded
from pipeline.paths import DROP
from pipeline.plan import CompiledMask, DatasetPlan, EgressPlan
from pipeline.producer_identity import IdentityRefused
from pipeline.rules import conditions_met, contract_violation, residency_violation
from schemas.decision import Decision, EgressRecord, Finding, MaskApplied, Outcome, RawRecord
from schemas.policy import OnPII, OnViolation

EVENT_ID_HEADER = "event-id"
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")

# A hook the fault tests use to inject failures into a named stage; None in production.
FaultHook = Callable[[str], None]


def event_id_of(record: RawRecord) -> tuple[str, str | None]:
    """The producer's ``event-id`` header when valid, else the record's coordinates.

    Returns ``(event_id, problem)``; ``problem`` is set when a header is present but unusable.
    """
    for name, value in record.headers:
        if name == EVENT_ID_HEADER:
            try:
                text = value.decode("ascii")
            except (UnicodeDecodeError, AttributeError):
                return record.coordinates, "event-id header is not ASCII"
            if not _EVENT_ID.match(text):
                return record.coordinates, "event-id header has an invalid format"
            return text, None
    return record.coordinates, None


def _dead(event_id: str, reason: str, detail: str) -> Decision:
    return Decision(Outcome.DEADLETTER, event_id, reason, detail)


def _parse(record: RawRecord, plan: DatasetPlan, event_id: str) -> dict[str, Any] | Decision:
    value = record.value
    if value is None or len(value) == 0:
        return _dead(event_id, "empty_value", "the record has no value")
    if len(value) > plan.rules.max_record_bytes:
        return _dead(event_id, "too_large", f"value is {len(value)} bytes, limit {plan.rules.max_record_bytes}")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return _dead(event_id, "not_utf8", f"invalid UTF-8 at byte {uexc.start}")
        if str(exc).startswith("depth limit exceeded"):
            return _dead(event_id, "too_deep", "nesting deeper than the parser's limit of 1024 levels")
        return _dead(event_id, "invalid_json", f"not valid JSON (at character {exc.pos})")
    if not isinstance(doc, dict):
        return _dead(event_id, "not_an_object", f"the JSON root is {type(doc).__name__}, expected an object")
    return doc


_CONTAINERS = (dict, list)  # a tuple: isinstance checks it faster than the union ``dict | list``


def _strings(node: Any, path: str, out: list[tuple[str, Any, Any, str]], names: list[str]) -> None:
    """Append every string in ``node`` as (concrete path, container, key, value), depth first, and
    every object key to ``names``."""
    if isinstance(node, dict):
        names.extend(node)
        prefix = f"{path}." if path else ""
        for key, value in node.items():
            if isinstance(value, str):
                out.append((f"{prefix}{key}", node, key, value))
            elif isinstance(value, _CONTAINERS):
                _strings(value, f"{prefix}{key}", out, names)
        return
    for index, value in enumerate(node):
        if isinstance(value, str):
            out.append((f"{path}[{index}]", node, index, value))
        elif isinstance(value, _CONTAINERS):
            _strings(value, f"{path}[{index}]", out, names)


def _identify(record: RawRecord, plan: DatasetPlan, event_id: str) -> dict[str, Any] | Decision:
    """The verified, authorized producer as ``{"subject", "groups"}``, or the rejection."""
    try:
        if plan.identity is None:
            raise IdentityRefused("identity_invalid:unconfigured", "producer identity is not configured on this worker")
        principal = plan.identity.identify(record, event_id)
        producers = plan.rules.producers
        if producers is None or not producers.allows(principal.subject, principal.groups):
            raise IdentityRefused("producer_not_authorized", f"the producer may not write dataset {plan.name!r}")
    except IdentityRefused as refused:
        return Decision(Outcome.REJECTED, event_id, refused.reason, refused.detail)
    return principal.as_dict()


def _apply_masks(doc: dict[str, Any], masks: tuple[CompiledMask, ...], masked: list[MaskApplied]) -> set[str]:
    done: set[str] = set()
    for mask in masks:
        strategy = mask.strategy
        if mask.keys is not None:
            # A plain key path matches at most one value: reach it directly (as FieldPath.transform would).
            container: Any = doc
            for name in mask.keys[:-1]:
                container = container.get(name) if isinstance(container, dict) else None
            last = mask.keys[-1]
            if isinstance(container, dict) and last in container:
                done.add(mask.concrete)
                masked.append(mask.applied)
                result = strategy.mask(container[last])
                if result is DROP:
                    del container[last]
                else:
                    container[last] = result
            continue

        def apply(concrete: str, value: Any, strategy=strategy) -> Any:  # noqa: ANN001
            done.add(concrete)
            masked.append(MaskApplied(concrete, strategy.name, strategy.key_id))
            return strategy.mask(value)

        mask.path.transform(doc, apply)
    return done


# Object keys are field names, a small set repeated in every record of a dataset: names found clean
# are remembered. Bounded (short keys only, emptied when full), so random keys cost only their scans.
_NAME_SPANS: dict[str, tuple[detection.Span, ...]] = {}
_NAME_SPANS_MAX, _NAME_MAX_CHARS = 4096, 64


def _name_spans(names: list[str], budget: detection.Budget) -> dict[str, tuple[detection.Span, ...]]:
    """Spans of every field name not known clean: one :func:`detection.scan_each` over the new ones."""
    if _NAME_SPANS.keys() >= set(names):  # the usual case, decided without a Python loop
        return {}
    fresh = list(dict.fromkeys(name for name in names if name not in _NAME_SPANS))
    found = dict.fromkeys(fresh, ())
    found.update((fresh[i], tuple(spans)) for i, spans in detection.scan_each(fresh, budget))
    # A name that is not kept was scanned at each occurrence: charge its repeats as before.
    kept = {name for name, spans in found.items() if not spans and len(name) <= _NAME_MAX_CHARS}
    budget.charge(sum(len(name) for name in names if name in found and name not in kept) -
                  sum(len(name) for name in found if name not in kept))
    for name, spans in found.items():
        if not spans and len(name) <= _NAME_MAX_CHARS:  # never keep a name that holds personal data
            if len(_NAME_SPANS) >= _NAME_SPANS_MAX:
                _NAME_SPANS.clear()
            _NAME_SPANS[name] = spans
    return {name: spans for name, spans in found.items() if spans}


def _rename(node: Any, path: str, dirty: dict[str, tuple[detection.Span, ...]], findings: list[Finding]) -> None:
    """Object keys are producer input too: a key holding personal data is renamed to its redaction
    (before values are scanned, so no finding path quotes it)."""
    if isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict | list):
                _rename(value, f"{path}[{i}]", dirty, findings)
        return
    renamed: dict[str, tuple[str, set[str]]] = {}
    for key in node:
        spans = dirty.get(key)
        if spans:
            renamed[key] = (detection.redact_spans(key, spans), {span.type for span in spans})
    if renamed:
        items = list(node.items())
        node.clear()
        for key, value in items:
            new, types = renamed.get(key, (key, set()))
            while new in node:  # two redacted names can coincide; keep both values
                new += "~"
            node[new] = value
            findings.extend(Finding(t, f"{path}.{new}" if path else new) for t in sorted(types))
    for key, value in node.items():
        if isinstance(value, dict | list):
            _rename(value, f"{path}.{key}" if path else key, dirty, findings)


def _scan(doc: dict[str, Any] | None, skip: set[str], key: str | None, budget: detection.Budget,
          findings: list[Finding]) -> list[detection.Span] | None:
    """Scan the record's field names, then every string value not in ``skip`` and the ``key`` text,
    in one :func:`detection.scan_each` pass. Values with findings are redacted in place; returns the
    key's spans (None when it had none or was not scanned)."""
    items: list[tuple[str, Any, Any, str]] = []
    if doc is not None:
        names: list[str] = []
        _strings(doc, "", items, names)
        dirty = _name_spans(names, budget)
        if dirty:  # rare: rename, then collect the values again under their new paths
            _rename(doc, "", dirty, findings)
            items = []
            _strings(doc, "", items, names)
        if skip:
            items = [item for item in items if item[0] not in skip]
    texts = [item[3] for item in items]
    if key is not None:
        texts.append(key)
    count = len(items)

    def hint(index: int) -> str | None:
        # The field name is context for weak-checksum identifiers ("ssn", "nhs_number"...).
        return items[index][0].rsplit(".", 1)[-1] if index < count else None

    key_spans = None
    for index, spans in detection.scan_each(texts, budget, hint):
        if index == count:
            key_spans = spans
            continue
        path, container, name, text = items[index]
        findings.extend(Finding(span.type, path) for span in spans)
        # Redacted whatever the dataset does with findings: a held record's preview is shown to
        # approvers and must not carry the values that made it held.
        container[name] = detection.redact_spans(text, spans)
    return key_spans


def _screen_key(record: RawRecord, plan: DatasetPlan, doc: dict[str, Any] | None, skip: set[str],
                budget: detection.Budget, findings: list[Finding], masked: list[MaskApplied]) -> bytes | None:
    """Scan the value (``doc``, unless None) and the key in one pass; return the key for cleared
    topics: masked by the key rule, or scanned like free text (its findings come after the value's)."""
    text = None
    if record.key is not None:
        try:
            text = record.key.decode("utf-8")
        except UnicodeDecodeError:
            text = None  # an opaque key cannot be screened, so it does not leave
    scan_key = text is not None and plan.key_mask is None
    spans = _scan(doc, skip, text if scan_key else None, budget, findings) if doc is not None or scan_key else None
    if text is None:
        return None
    if plan.key_mask is not None:
        masked.append(MaskApplied("key", plan.key_mask.name, plan.key_mask.key_id))
        out = plan.key_mask.mask(text)
        return None if out is DROP else str(out).encode()
    if not spans:
        return record.key
    findings.extend(Finding(span.type, "key") for span in spans)
    return detection.redact_spans(text, spans).encode()


def _route(doc: dict[str, Any], record: RawRecord, plan: DatasetPlan, event_id: str,
           fault: FaultHook | None, release: bool) -> Decision:
    rules = plan.rules
    # A release (an approved hold) skips every hold: the human decided. Unexpected PII is masked,
    # never let through, whatever the dataset says about holding it.
    on_pii = OnPII.MASK if release and rules.unexpected_pii is OnPII.HOLD else rules.unexpected_pii
    findings: list[Finding] = []
    masked: list[MaskApplied] = []
    budget = detection.Budget(max_seconds=rules.detection_budget_ms / 1000.0)

    if fault:
        fault("policy")
    violation = residency_violation(doc, rules.residency) if rules.residency else None
    hold_rule = None if release else next((r.name for r in rules.hold if conditions_met(doc, r.when)), None)
    if violation and rules.residency.on_violation is OnViolation.REJECT:
        return Decision(Outcome.REJECTED, event_id, "jurisdiction_violation", violation)

    if fault:
        fault("masking")
    skip = _apply_masks(doc, plan.masks, masked)
    if fault:
        fault("detection")
    key = _screen_key(record, plan, doc if rules.scan_unlisted else None, skip, budget, findings, masked)

    if findings and on_pii is OnPII.REJECT:
        return Decision(Outcome.REJECTED, event_id, "unexpected_pii", _kinds(findings), findings=findings)
    if violation and not release:
        return Decision(Outcome.HELD, event_id, "jurisdiction_violation", violation,
                        findings=findings, masked=masked, preview=doc)
    if findings and on_pii is OnPII.HOLD:
        return Decision(Outcome.HELD, event_id, "unexpected_pii", _kinds(findings),
                        findings=findings, masked=masked, preview=doc)
    if hold_rule:
        return Decision(Outcome.HELD, event_id, f"hold_rule:{hold_rule}", "a hold rule matched",
                        findings=findings, masked=masked, preview=doc)
    # The budget covers every stage: slow policy evaluation or masking holds the record even when
    # nothing was left to scan (fail closed on a timeout anywhere, not only in detection).
    budget.check()
    value = orjson.dumps(doc)
    return Decision(Outcome.CLEARED, event_id, "cleared", "", value=value, key=key, findings=findings,
                    masked=masked, egress=[_egress(value, key, profile) for profile in plan.egress])


def _egress(cleared: bytes, key: bytes | None, profile: EgressPlan) -> EgressRecord:
    """The cleared record with the profile's masking applied on top of the dataset's."""
    doc = orjson.loads(cleared)
    masked: list[MaskApplied] = []
    _apply_masks(doc, profile.masks, masked)
    if key is not None and profile.key_mask is not None:
        masked.append(MaskApplied("key", profile.key_mask.name, profile.key_mask.key_id))
        out = profile.key_mask.mask(key.decode("utf-8", errors="replace"))
        key = None if out is DROP else str(out).encode()
    return EgressRecord(profile.name, profile.topic, key, orjson.dumps(doc), tuple(masked))


def _kinds(findings: list[Finding]) -> str:
    return "found " + ", ".join(sorted({f.type for f in findings}))


def screen(record: RawRecord, plan: DatasetPlan, fault: FaultHook | None = None, *,
           release: bool = False, check_identity: bool = True) -> Decision:
    """Decide the one outcome of ``record`` under ``plan``.

    ``release=True`` screens a held record that approvers released: hold rules and a held
    jurisdiction no longer hold it, but masking, detection and every reject rule still apply, so
    the result is cleared (masked), rejected or dead-lettered, or held again on a detection timeout.
    A release and ``check_identity=False`` (offline masking) skip producer identity: a held record's
    producer was verified when it was screened and is kept in its envelope.
    ``fault`` is a test hook called with the stage name ("policy", "masking", "detection") so the
    fault tests can inject an exception or a delay; it is ``None`` in production.
    """
    producer = admission(record, plan) if check_identity and not release else None
    if isinstance(producer, Decision):
        return producer
    event_id, problem = event_id_of(record)
    if problem:
        return _dead(event_id, "invalid_event_id_header", problem)
    decision = _decide(record, plan, event_id, fault, release)
    decision.producer = producer
    return decision


def admission(record: RawRecord, plan: DatasetPlan) -> Decision | dict[str, Any] | None:
    """``screen()``'s first step alone, the producer identity check: the Decision when the record
    ends there (an unusable event-id header, a refused producer), else the verified producer, or
    None when the dataset does not check identity. The worker runs it itself before a helper
    process screens the rest (pipeline/screenpool.py): only the worker refreshes producer keys."""
    if plan.rules.identity != "required":
        return None
    event_id, problem = event_id_of(record)
    if problem:
        return _dead(event_id, "invalid_event_id_header", problem)
    return _identify(record, plan, event_id)


def _decide(record: RawRecord, plan: DatasetPlan, event_id: str, fault: FaultHook | None, release: bool) -> Decision:
    parsed = _parse(record, plan, event_id)
    if isinstance(parsed, Decision):
        return parsed
    if plan.rules.schema_ is not None:
        contract = plan.contract
        broken = contract.violation(parsed) if contract is not None else contract_violation(parsed, plan.rules.schema_)
        if broken:
            return _dead(event_id, "contract_violation", broken)
    try:
        return _route(parsed, record, plan, event_id, fault, release)
    except (DetectionBudgetExceeded, TimeoutError):
        return Decision(Outcome.HELD, event_id, "detection_budget_exceeded",
                        "detection did not finish within the record's budget")
    except RecursionError:
        return _dead(event_id, "too_deep", "nesting too deep to screen")
    except Exception as exc:  # noqa: BLE001 - fail closed on anything, and say what kind of failure
        return _dead(event_id, "internal_error", f"{type(exc).__name__} during screening")
