"""The query gateway: REST (FastAPI) and gRPC over one transport-independent service."""

from datatorag.gateway.app import GatewayDeps, create_app

__all__ = ["GatewayDeps", "create_app"]
