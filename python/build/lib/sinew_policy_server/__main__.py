"""`python -m sinew_policy_server --help`."""

import argparse
import ctypes
import importlib
import logging
import os
import signal
import sys
import threading
import time

from .server import PolicyServer
from .standin import StandInPolicy


def _load(spec: str, args):
    if spec == "standin":
        return StandInPolicy(state_key=args.state_key, steps=args.steps, step_s=args.step_s,
                             nan_every=args.nan_every, delay_s=args.delay_s, columns=args.columns)
    if spec.startswith("lerobot:"):
        from .lerobot_policy import LeRobotPolicy
        return LeRobotPolicy(spec[len("lerobot:"):], device=args.device, task=args.task)
    if ":" in spec:  # module:callable, a factory returning an object with infer(obs) -> dict
        module, name = spec.split(":", 1)
        return getattr(importlib.import_module(module), name)()
    raise SystemExit(f"unknown --policy {spec!r}: standin, lerobot:DIR or module:factory")


def _exit_with_parent():
    """SINEW_EXIT_WITH_PARENT=1 (as test runners set it): end when the process that started this one goes away,
    so a crashed test never leaves a server behind. Linux's parent-death signal, and a watcher for the rest."""
    if os.environ.get("SINEW_EXIT_WITH_PARENT") != "1":
        return
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(143)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="sinew-policy-server",
        description="Serve a policy to Sinew (or any openpi client) over openpi's websocket protocol. Clients must "
        "send the token of --token-file as 'Authorization: Bearer TOKEN'. Listens on loopback unless --host says "
        "otherwise: put it behind an SSH tunnel or a VPN to reach it from another machine.",
    )
    parser.add_argument("--policy", default="standin",
                        help="standin (a scripted numpy stand-in), lerobot:DIR (a LeRobot policy saved in DIR), or "
                        "module:factory (a callable returning an object with infer(observation) -> {'actions': ...})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token-file", help="file whose first line is the token clients must send (required "
                        "unless --no-token)")
    parser.add_argument("--no-token", action="store_true", help="accept any client (loopback experiments only)")
    parser.add_argument("--device", default="cpu", help="torch device for a LeRobot policy")
    parser.add_argument("--task", help="the task prompt for a LeRobot policy when the client sends none")
    parser.add_argument("--state-key", default="observation.state", help="stand-in: the observation's state key")
    parser.add_argument("--steps", type=int, default=50, help="stand-in: actions per chunk")
    parser.add_argument("--step-s", type=float, default=1 / 30, help="stand-in: time between actions")
    parser.add_argument("--nan-every", type=int, default=0, help="stand-in: put a NaN in every n-th chunk")
    parser.add_argument("--delay-s", type=float, default=0.0, help="stand-in: extra inference time per request")
    parser.add_argument("--columns", type=int, help="stand-in: action columns (default: as many as the state)")
    parser.add_argument("--tls-cert", help="serve wss:// (TLS) with this certificate chain (PEM)")
    parser.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    parser.add_argument("--ready-file", help="write the port here once listening (for scripts and tests)")
    args = parser.parse_args(argv)
    _exit_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.readline().strip()
        if not token:
            parser.error(f"{args.token_file} holds no token")
    elif args.no_token:
        token = None
    else:
        parser.error("give --token-file (or --no-token for an experiment on loopback)")
    context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            parser.error("--tls-cert and --tls-key go together")
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(args.tls_cert, args.tls_key)
    policy = _load(args.policy, args)
    server = PolicyServer(policy, args.host, args.port, token, ssl_context=context)

    def ready(ws_server):
        port = next(iter(ws_server.sockets)).getsockname()[1]
        logging.getLogger("sinew_policy_server").info("serving %s on %s:%d", args.policy, args.host, port)
        if args.ready_file:
            with open(args.ready_file, "w", encoding="utf-8") as f:
                f.write(f"{port}\n")

    try:
        server.serve_forever(ready)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
