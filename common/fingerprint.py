"""Fingerprints of what a run depends on, so that a checkpoint refuses to resume on another model or setup."""
import hashlib
import json


def _update(h, tensor) -> None:
    import torch
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    h.update(memoryview(flat.view(torch.uint8).numpy()))


def model_fingerprint(model) -> str:
    """A hash of a torch model's weights and buffers, streamed tensor by tensor."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        _update(h, tensor)
    return h.hexdigest()[:16]


def tensor_fingerprint(tensor) -> str:
    """A hash of one tensor's values (the fixed noise of a generator, say)."""
    h = hashlib.sha256(str(tuple(tensor.shape)).encode())
    _update(h, tensor)
    return h.hexdigest()[:16]


def run_fingerprint(parts: dict) -> str:
    """One string for a dict of what a run depends on (model hash, data, metric, ...), stable across runs."""
    return json.dumps(parts, sort_keys=True, default=str)
