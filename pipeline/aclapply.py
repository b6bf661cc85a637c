"""Create ACLs on a broker with aiokafka's CreateAcls request (aiokafka has no public call for it).

Used by ``residency acls --apply`` and the ACL integration test; the admin connection needs a
principal that may alter the cluster's ACLs (a super user).
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

from pipeline.acls import Acl

RESOURCE = {"topic": 2, "group": 3, "cluster": 4, "transactional-id": 5}
PATTERN = {"literal": 3, "prefixed": 4}
OPERATION = {"All": 2, "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8,
             "ClusterAction": 9, "DescribeConfigs": 10, "AlterConfigs": 11, "IdempotentWrite": 12}
ALLOW = 3


class AclError(RuntimeError):
    pass


async def apply_acls(bootstrap: str, acls: list[Acl], **client_options: Any) -> int:
    """Create every ACL (idempotent on the broker side); returns how many were sent."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000, **client_options)
    await admin.start()
    try:
        for acl in acls:
            name = "kafka-cluster" if acl.resource == "cluster" else acl.name
            request = CreateAclsRequest(RESOURCE[acl.resource], name, PATTERN[acl.pattern], acl.principal, "*",
                                        OPERATION[acl.operation], ALLOW)
            response = await admin._send_request(request)  # noqa: SLF001 - no public CreateAcls in aiokafka
            for result in response.creation_responses:
                code, message = result[0], result[1]
                if code:
                    raise AclError(f"CreateAcls for {acl.principal} on {acl.resource} {name!r} failed: "
                                   f"error {code} {message or ''}".strip())
        return len(acls)
    finally:
        await admin.close()
