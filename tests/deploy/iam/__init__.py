"""The AWS actions each service's code calls, read from the source (``test_iam_from_code``).

Modules: ``rules`` (the explicit tables), ``source`` (the package as data), ``aws_calls``
(aiobotocore/opensearch-py calls -> IAM actions), ``services`` (a service's closure and port
calls), ``derive`` (-> action/resource pairs).

How a service's needs are derived, so that a role can be checked to grant exactly them:

1. **What a service runs** (``SERVICES``): its entry functions. From there the closure follows
   every package function or class the code names (imports resolved, function-local ones too),
   except the adapter container and factory (``OPAQUE``): which adapters a service holds is read
   from the ``Components`` accessors its code touches (``c.queue("parse")``, ``c.registry``,
   ``c.index()``, ``c.embedding_cache`` ...), each bringing the port methods ``Components`` itself
   calls on it (``check``, ``ensure``); ``c`` must be a Components by its annotation or
   assignment (a chunk ``c`` in a loop is not). Components methods that wrap an adapter in
   package code (``COMPONENTS_FOLLOWED``: ``document_embedder`` -> ``CachedEmbedder``) are
   followed. Branches only the embedded mode takes (``if settings.mode is Mode.EMBEDDED``) are
   left out: the roles are production's.
2. **Port calls** in the closure: ``<receiver>.<method>`` where the receiver is named like a
   port (``RECEIVERS``: ``registry``, ``blobstore``, ``queue``, ``out`` ...) and the method is one
   of that port's. A queue receiver is bound to the logical queue it was built from where the
   code says so (``Worker(c.queue("parse"), ...)`` binds ``Worker.queue``;
   ``self.queues["embed"]``); an unbound one could be any queue the service holds. A blob call's
   prefix follows its key (``raw_key(...)``, ``message.chunks_key``, a caller's argument, a loop
   over a set of such keys, the keys ``blobstore.list(records_prefix(...))`` yields); the blob
   store's ``check`` writes its probe object under ``_readyz/``.
3. **Adapters** (``PORT_ADAPTERS``): each port method of the production adapter is walked (its
   own and inherited helpers, helper classes of its module) for aiobotocore client calls, i.e.
   calls of the botocore operations of the service the module makes clients for, plus operations
   named as strings (paginators, waiters, ``_call("put_item")``). SQS calls are attributed to the
   queue or its DLQ by following the ``QueueUrl``/``QueueName`` argument back to ``self.name`` or
   ``self.dlq_name``. OpenSearch calls become HTTP verbs, read from opensearch-py's own source.
4. **Direct AWS callers** outside the adapters (``DIRECT_TARGETS``: the S3 source, the landing
   zone, the secret resolver, ``datatorag init``'s provisioning) are walked the same way.
5. Operations map to IAM actions (``OPERATION_ACTIONS``; others are ``service:Operation``); the
   KMS actions follow from what is encrypted (``KMS_FOR``).

The result is a set of ``(action, resource)`` pairs per service; resources are symbolic names
(``queue:parse``, ``dlq:parse``, ``objects:documents/raw``, ``table:registry``, ``domain``, ...)
that the test maps to the template's ARNs.
"""

from __future__ import annotations

from tests.deploy.iam.derive import Derivation, derivation
from tests.deploy.iam.rules import (
    CLOUDFORMATION_OWNS,
    LOGICAL_QUEUES,
    PKG_DIR,
    SERVICES,
    DerivationError,
)

__all__ = [
    "CLOUDFORMATION_OWNS",
    "LOGICAL_QUEUES",
    "PKG_DIR",
    "SERVICES",
    "Derivation",
    "DerivationError",
    "derivation",
]
