"""Serve a policy to Sinew (or any openpi client) over openpi's websocket protocol, with a bearer token.

The protocol (openpi's `serve_policy.py` and `openpi_client.websocket_client_policy`): the server sends one
binary msgpack frame of metadata when a client connects; then each binary frame from the client is a msgpack map
of observations (numpy arrays as msgpack-numpy writes them) and the server answers with one binary frame, a map
holding `actions` (an H x D array) and `server_timing`; a text frame is an error. Unlike openpi's server, this one
requires the token given with --token-file in the client's `Authorization` header (`Bearer TOKEN`; openpi's
client sends `Api-Key TOKEN`, which is taken too) and never unpickles anything.
"""

__version__ = "0.1.0"
