"""msgpack with numpy arrays in msgpack-numpy's layout (the keys openpi uses), and nothing else: no pickle."""

import msgpack
import numpy as np

_KINDS = ("b", "i", "u", "f")


def _pack_default(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _KINDS:
            raise ValueError(f"unsupported array dtype {obj.dtype}")
        obj = np.ascontiguousarray(obj)
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in _KINDS:
            raise ValueError(f"unsupported scalar dtype {obj.dtype}")
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send {type(obj).__name__}")


def _unpack_hook(obj):
    if b"__ndarray__" in obj:
        dtype = np.dtype(obj[b"dtype"])
        if dtype.kind not in _KINDS:
            raise ValueError(f"unsupported array dtype {dtype}")
        shape = tuple(int(n) for n in obj[b"shape"])
        data = obj[b"data"]
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
            raise ValueError(f"array of shape {shape} and dtype {dtype} does not match its {len(data)} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if b"__npgeneric__" in obj:
        dtype = np.dtype(obj[b"dtype"])
        if dtype.kind not in _KINDS:
            raise ValueError(f"unsupported scalar dtype {dtype}")
        return dtype.type(obj[b"data"])
    return obj


def packb(obj) -> bytes:
    return msgpack.packb(obj, default=_pack_default, use_bin_type=True)


def unpackb(data: bytes, max_bytes: int = 64 << 20):
    if len(data) > max_bytes:
        raise ValueError(f"message of {len(data)} bytes, more than {max_bytes}")
    return msgpack.unpackb(data, object_hook=_unpack_hook, raw=False, strict_map_key=False)
