"""LeRobot's async-inference transport, timed round trip on loopback with the payload `sinew bench remote-policy`
uses, for the comparison it prints. Only for the benchmark's environment (`make bench-remote-policy`): it needs
`lerobot` (installed without its dependencies: its generated messages, `lerobot/transport/services_pb2.py`, and the
method names of its `AsyncInference` service), `grpcio` and `protobuf`.

What it reproduces of LeRobot 0.6's robot client and policy server (src/lerobot/async_inference): the observation
is a pickled `TimedObservation`-like object streamed in `TransferState` pieces of at most 2 MiB through
`AsyncInference.SendObservations`; the server unpickles it, predicts, and `AsyncInference.GetActions` returns the
pickled list of `TimedAction`-like objects (one per step). The stand-in policy answers the same 50 x 6 chunk as the
Sinew side's. torch is not needed: the arrays are numpy arrays, which pickle the same way in size and shape.

Prints one JSON object: {"calls", "p50_ms", "p99_ms", "observation_bytes", "actions_bytes"}.
"""

import argparse
import json
import pickle  # noqa: S403 - what LeRobot's transport does; this is what the benchmark measures
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import importlib.util
import os

import grpc
import numpy as np


def _lerobot_services():
    """LeRobot's generated message classes (lerobot/transport/services_pb2.py), loaded from the installed package by
    path: importing `lerobot.transport` would import torch, which the transport itself does not need."""
    spec = importlib.util.find_spec("lerobot")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("lerobot is not installed in this environment (make bench-remote-policy installs it)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "transport", "services_pb2.py")
    module_spec = importlib.util.spec_from_file_location("lerobot_transport_services_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


services_pb2 = _lerobot_services()
SERVICE = "transport.AsyncInference"  # the service's full name in services.proto

PIECE = 2 * 1024 * 1024  # LeRobot's CHUNK_SIZE


@dataclass
class TimedObservation:
    timestamp: float
    timestep: int
    observation: dict = field(default_factory=dict)
    must_go: bool = False


@dataclass
class TimedAction:
    timestamp: float
    timestep: int
    action: np.ndarray = None


def pieces(data: bytes):
    sent = 0
    while sent < len(data):
        if sent + PIECE >= len(data):
            state = services_pb2.TRANSFER_END
        elif sent == 0:
            state = services_pb2.TRANSFER_BEGIN
        else:
            state = services_pb2.TRANSFER_MIDDLE
        yield services_pb2.Observation(transfer_state=state, data=data[sent:sent + PIECE])
        sent += PIECE


class Server:
    def __init__(self, steps, columns):
        self.steps = steps
        self.columns = columns
        self.ready = threading.Event()
        self.actions = None

    def SendObservations(self, request_iterator, context):  # noqa: N802 - the service's names
        buffer = bytearray()
        for item in request_iterator:
            if item.transfer_state == services_pb2.TRANSFER_BEGIN:
                buffer = bytearray(item.data)
            else:
                buffer += item.data
        observation = pickle.loads(bytes(buffer))  # noqa: S301
        state = np.asarray(observation.observation["observation.state"], dtype=np.float32)
        chunk = state[None, : self.columns] + 0.01 * np.arange(self.steps, dtype=np.float32)[:, None]
        self.actions = [
            TimedAction(timestamp=observation.timestamp + i / 30, timestep=observation.timestep + i, action=row)
            for i, row in enumerate(chunk)
        ]
        self.ready.set()
        return services_pb2.Empty()

    def GetActions(self, request, context):  # noqa: N802
        self.ready.wait(timeout=5)
        self.ready.clear()
        return services_pb2.Actions(data=pickle.dumps(self.actions))

    def Ready(self, request, context):  # noqa: N802
        return services_pb2.Empty()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--joints", type=int, default=6)
    args = parser.parse_args()
    options = [("grpc.max_receive_message_length", 4 * 1024 * 1024), ("grpc.max_send_message_length", 4 * 1024 * 1024)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
    servicer = Server(args.steps, args.joints)
    handlers = {
        "SendObservations": grpc.stream_unary_rpc_method_handler(
            servicer.SendObservations, request_deserializer=services_pb2.Observation.FromString,
            response_serializer=services_pb2.Empty.SerializeToString),
        "GetActions": grpc.unary_unary_rpc_method_handler(
            servicer.GetActions, request_deserializer=services_pb2.Empty.FromString,
            response_serializer=services_pb2.Actions.SerializeToString),
        "Ready": grpc.unary_unary_rpc_method_handler(
            servicer.Ready, request_deserializer=services_pb2.Empty.FromString,
            response_serializer=services_pb2.Empty.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    send_observations = channel.stream_unary(
        f"/{SERVICE}/SendObservations", request_serializer=services_pb2.Observation.SerializeToString,
        response_deserializer=services_pb2.Empty.FromString)
    get_actions = channel.unary_unary(
        f"/{SERVICE}/GetActions", request_serializer=services_pb2.Empty.SerializeToString,
        response_deserializer=services_pb2.Actions.FromString)
    ready = channel.unary_unary(
        f"/{SERVICE}/Ready", request_serializer=services_pb2.Empty.SerializeToString,
        response_deserializer=services_pb2.Empty.FromString)
    ready(services_pb2.Empty())
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    state = rng.standard_normal(args.joints).astype(np.float32)
    times = []
    sizes = (0, 0)
    for k in range(args.warmup + args.calls):
        start = time.perf_counter()
        observation = TimedObservation(
            timestamp=time.time(), timestep=k,
            observation={"observation.state": state, "observation.images.front": image, "task": "pick up the cube"})
        data = pickle.dumps(observation)
        send_observations(pieces(data))
        answer = get_actions(services_pb2.Empty())
        actions = pickle.loads(answer.data)  # noqa: S301
        assert len(actions) == args.steps
        if k >= args.warmup:
            times.append((time.perf_counter() - start) * 1000)
        sizes = (len(data), len(answer.data))
    server.stop(0)
    times.sort()
    print(json.dumps({
        "calls": len(times), "p50_ms": times[len(times) // 2], "p99_ms": times[int(0.99 * (len(times) - 1))],
        "observation_bytes": sizes[0], "actions_bytes": sizes[1],
    }))


if __name__ == "__main__":
    main()
