"""The query gateway: REST (FastAPI) and gRPC over one transport-independent service."""

from datatorag.gateway.app import create_app
from datatorag.gateway.deps import GatewayDeps

__all__ = ["GatewayDeps", "create_app"]
