"""The Python snippets of docs/audit.md run, so the page cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.audit.sample import sample_trail
from pipeline.audit.signing import generate_signing_key, load_signing_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def test_when_the_audit_doc_snippets_run_then_they_verify_a_sample_trail(capsys):
    signer = load_signing_key(generate_signing_key())
    trail = sample_trail(signer)
    snippets = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert snippets
    for snippet in snippets:
        namespace = {"records": trail.records, "checkpoints": trail.checkpoints,
                     "pems": [signer.public_key_pem()]}
        exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
        assert namespace["report"].ok
    assert capsys.readouterr().out.startswith("OK")
