"""gRPC over cleartext HTTP/2: a grpcio server and client in one process, for the fixtures.

No gRPC server is packaged for Debian; grpcio (PyPI, the ``record`` extra) is
the real implementation (gRPC C-core underneath), so its bytes are what gRPC
services send.  The service needs no generated code: a generic handler with
raw-bytes (de)serializers answers ``/demo.Greeter/SayHello`` (OK),
``/demo.Greeter/Fail`` (NOT_FOUND with a message) and ``/demo.Greeter/Count``
(three streamed replies).
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

#: Seconds each call may take.
CALL_TIMEOUT_S = 10.0


def _handlers() -> Any:
    import grpc  # type: ignore[import-untyped,import-not-found,unused-ignore]

    def say_hello(request: bytes, context: Any) -> bytes:
        return b"hello " + request

    def fail(request: bytes, context: Any) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")
        return b""  # not reached: abort raises

    def count(request: bytes, context: Any) -> Any:
        for n in range(3):
            yield f"{request.decode()} {n}".encode()

    def raw(handler: Any, streaming: bool = False) -> Any:
        make = grpc.unary_stream_rpc_method_handler if streaming else \
            grpc.unary_unary_rpc_method_handler
        return make(handler, request_deserializer=None, response_serializer=None)

    return grpc.method_handlers_generic_handler("demo.Greeter", {
        "SayHello": raw(say_hello), "Fail": raw(fail), "Count": raw(count, streaming=True),
    })  # fmt: skip


def grpc_traffic(host: str, port: int) -> None:
    """Serve on ``host:port`` and call it: a unary OK, a unary error, a server stream."""
    import grpc  # type: ignore[import-untyped,import-not-found,unused-ignore]

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((_handlers(),))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    try:
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            hello = channel.unary_unary("/demo.Greeter/SayHello")
            if hello(b"world", timeout=CALL_TIMEOUT_S) != b"hello world":
                raise AssertionError("the gRPC server answered something else")
            try:
                channel.unary_unary("/demo.Greeter/Fail")(b"x", timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            replies = list(channel.unary_stream("/demo.Greeter/Count")(b"tick",
                                                                       timeout=CALL_TIMEOUT_S))
            if len(replies) != 3:
                raise AssertionError(f"the gRPC stream gave {len(replies)} replies")
    finally:
        server.stop(grace=None).wait()
