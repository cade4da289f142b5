"""Server reflection, v1 and v1alpha, that resolves method names too.

grpcio-reflection ships only ``grpc.reflection.v1alpha`` and looks symbols up with
``DescriptorPool.FindFileContainingSymbol``, which (upb protobuf) does not find methods:
``grpcurl describe graphrec.v1.Recommender.Recommend`` and ghz without ``--proto`` got
"Symbol not found". Here a method resolves to its service's file, and the same servicer is
also served as ``grpc.reflection.v1.ServerReflection``: the v1 messages are the v1alpha ones
under another package (same fields, same numbers), so the v1alpha (de)serializers carry them.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import Message
from grpc_reflection.v1alpha import _async, reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA_SERVICE = reflection.SERVICE_NAME  # grpc.reflection.v1alpha.ServerReflection
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"


class MethodAwareReflection(_async.ReflectionServicer):  # = reflection.aio.ReflectionServicer
    """The shipped servicer, with ``file_containing_symbol`` also finding methods."""

    def _file_containing_symbol(self, request: Message, name: str) -> Message:
        answer: Message = super()._file_containing_symbol(request, name)
        if not answer.HasField("error_response"):
            return answer
        service, _, method = name.rpartition(".")
        try:
            found = self._pool.FindServiceByName(service)
        except KeyError:
            return answer
        if method not in found.methods_by_name:
            return answer
        return super()._file_containing_symbol(request, service)


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection for ``service_names`` (plus both reflection services) on ``server``,
    under the v1alpha and the v1 service names."""
    add_v1_descriptor()
    names = (*service_names, V1ALPHA_SERVICE, V1_SERVICE)
    servicer = MethodAwareReflection(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": v1}),)
    )


def add_v1_descriptor(pool: descriptor_pool.DescriptorPool | None = None) -> None:
    """Put ``grpc/reflection/v1/reflection.proto`` in ``pool`` (the default one), made from
    the v1alpha file by renaming its package, so describing the v1 service works too."""
    pool = pool or descriptor_pool.Default()
    try:
        pool.FindServiceByName(V1_SERVICE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", f".{V1_PACKAGE}."
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = V1_PACKAGE
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.Add(proto)
