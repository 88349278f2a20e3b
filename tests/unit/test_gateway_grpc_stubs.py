"""The committed gRPC stubs match proto/gateway.proto (regenerated with grpcio-tools)."""

from __future__ import annotations

from datatorag.gateway import grpc_codegen


def test_committed_stubs_are_current(capsys) -> None:
    assert grpc_codegen.main(["--check"]) == 0, capsys.readouterr().out


def test_proto_has_no_tenant_field() -> None:
    from datatorag.gateway.grpc_gen import gateway_pb2 as pb

    for message in pb.DESCRIPTOR.message_types_by_name.values():
        assert "tenant" not in message.fields_by_name, message.name
    assert set(pb.DESCRIPTOR.services_by_name["QueryGateway"].methods_by_name) == {
        "Search",
        "Query",
        "GetDocument",
        "Answer",
    }
    assert pb.DESCRIPTOR.services_by_name["QueryGateway"].methods_by_name["Answer"].server_streaming
