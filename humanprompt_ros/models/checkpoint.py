"""Self-describing checkpoints that cannot execute code on load.

One ``.safetensors`` file holds the tensors and, in its header metadata, JSON for: the format name
and version, the checkpoint ``kind`` (``stage1`` or ``policy``), the config it was trained with,
and anything else the writer adds (hand name, action layout, training step, command line...).
safetensors stores raw tensors only, so loading never runs code; a pickle (``torch.save``) file
is recognised and refused with a message saying why.

Training state (optimizer) for resuming goes into a second safetensors file beside it, tagged with the
step of the weights it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

FORMAT = "humanprompt_ros"
FORMAT_VERSION = 1


def command_line() -> str:
    """How this process was started (saved with checkpoints)."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe, of another format/version, or does not match."""


def save_checkpoint(
    path: str | Path, tensors: dict[str, torch.Tensor], kind: str, config: dict[str, Any], **meta: Any
) -> Path:
    """Write ``tensors`` and JSON metadata atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": kind, "config": json.dumps(config)}
    header.update({k: json.dumps(v) for k, v in meta.items()})
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=header)
    tmp.replace(path)
    return path


def _sniff_unsafe(path: Path) -> str | None:
    """Name the pickle-based formats (which run code when loaded); None for anything else.

    A safetensors file starts with an 8-byte little-endian header length followed by ``{``; its first
    byte can be anything, so that layout is checked before the pickle/zip magic numbers.
    """
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return None
    if head[:2] == b"PK":
        return "a zip archive (torch.save format), which unpickles Python objects and can execute code on load"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "a pickle file, which can execute code on load"
    return None


def load_checkpoint(
    path: str | Path, kind: str | None = None, keys: Callable[[str], bool] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint → (tensors, metadata with ``config`` and extras decoded from JSON). ``keys``: read only
    the tensors whose names it accepts (the rest are never read from the file).

    Raises :class:`CheckpointError` naming the problem: not found, unsafe format (pickle), corrupt,
    another format or version, or another ``kind`` than expected.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    unsafe = _sniff_unsafe(path)
    if unsafe:
        raise CheckpointError(
            f"refusing to load {path}: it is {unsafe}. humanprompt_ros checkpoints are "
            f"safetensors files; re-export the weights with safetensors."
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys() if keys is None or keys(k)}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint (corrupt or truncated?): {exc}"
        ) from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a {FORMAT} checkpoint (no format tag)")
    version = int(header.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this code reads version {FORMAT_VERSION}"
        )
    if kind is not None and header.get("kind") != kind:
        raise CheckpointError(f"{path} is a {header.get('kind')!r} checkpoint, expected {kind!r}")
    meta: dict[str, Any] = {"format": FORMAT, "format_version": version, "kind": header.get("kind")}
    for key, value in header.items():
        if key not in meta:
            try:
                meta[key] = json.loads(value)
            except json.JSONDecodeError:
                raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON (corrupt header)") from None
    return tensors, meta


def skill_counts(text: str) -> dict[str, int]:
    """``"rotate:8,pick_lift:8"`` → ``{"rotate": 8, "pick_lift": 8}`` (``ValueError`` otherwise)."""
    out = {}
    for item in filter(None, text.split(",")):
        skill, sep, n = item.partition(":")
        if not sep or not skill.strip():
            raise ValueError(item)
        out[skill.strip()] = int(n)
    return out


# config keys that only change how a checkpoint runs, not its weights (`export --set` may change them),
# with how each is read from the command line
INFERENCE_KEYS: dict[str, Any] = {
    "policy.execute": int,
    "policy.inference_steps": int,
    "policy.guidance": float,
    "policy.execute_by_skill": skill_counts,
}


def convert_checkpoint(
    src: str | Path, dst: str | Path, dtype: str = "float16", inference: dict[str, Any] | None = None
) -> Path:
    """Copy a checkpoint with its floating-point tensors stored as ``dtype`` (metadata kept, plus
    ``stored_dtype``): half the size for shipping. Loading casts them back to the model's dtype.
    ``inference``: new values for :data:`INFERENCE_KEYS` of its config (dotted keys), recorded under
    ``inference_overrides`` next to the training config they change."""
    target = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}.get(dtype)
    if target is None:
        raise ValueError(f"dtype: float16, bfloat16 or float32, got {dtype!r}")
    tensors, meta = load_checkpoint(src)  # refuses unsafe, corrupt and foreign files with the usual messages
    config = meta["config"]
    for key, value in (inference or {}).items():
        if key not in INFERENCE_KEYS:
            raise ValueError(
                f"{key}: export can only change {', '.join(INFERENCE_KEYS)} (the rest is what the "
                f"weights were trained with)"
            )
        section, name = key.split(".")
        if not isinstance(config.get(section), dict):
            raise ValueError(f"{key}: {src} is a {meta['kind']} checkpoint without a {section!r} section")
        config[section][name] = value  # also for a checkpoint older than the setting (it had the default)
    extras = {k: v for k, v in meta.items() if k not in ("format", "format_version", "kind", "config")}
    extras["stored_dtype"] = dtype
    if inference:
        extras["inference_overrides"] = {**extras.get("inference_overrides", {}), **inference}
    return save_checkpoint(
        dst,
        {k: v.to(target) if v.is_floating_point() else v for k, v in tensors.items()},
        meta["kind"],
        config,
        **extras,
    )


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str, fix: str = "") -> None:
    """Load ``tensors`` into ``model`` only if every name and shape matches; otherwise raise a
    :class:`CheckpointError` that starts with ``what``, names up to three missing, unexpected and
    reshaped weights, and ends with ``fix`` (torch itself raises a bare RuntimeError on a shape mismatch)."""
    dst = model.state_dict()
    missing, unexpected = [k for k in dst if k not in tensors], [k for k in tensors if k not in dst]
    reshaped = [k for k in dst if k in tensors and tensors[k].shape != dst[k].shape]
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"{what} (missing {missing[:3]}, unexpected {unexpected[:3]}, other shape {reshaped[:3]}){fix}"
        )
    model.load_state_dict(tensors)


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as flat tensors + JSON-able param groups (for safetensors)."""
    sd = optimizer.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            tensors[f"optim.{idx}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict[str, Any]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def save_train_state(path: str | Path, optimizer: torch.optim.Optimizer, **position: Any) -> Path:
    """Write ``optimizer``'s state for resuming, tagged with the training ``position`` (step, phase...)
    of the weights checkpoint written beside it."""
    tensors, groups = optimizer_tensors(optimizer)
    return save_checkpoint(path, tensors, "train_state", {}, **groups, position=position)


def load_train_state(path: str | Path, optimizer: torch.optim.Optimizer, **position: Any) -> None:
    """Restore ``optimizer`` from :func:`save_train_state`'s file if it was written at ``position`` (the
    weights' own). The weights and this state are two files written one after the
    other, so a run killed between the two leaves them at different steps: then the optimizer keeps
    its fresh state and a warning says so, rather than pairing the weights with older moments. A file
    from before positions were recorded is trusted as it is."""
    tensors, meta = load_checkpoint(path, kind="train_state")
    saved = meta.get("position")
    if saved is not None and saved != position:
        warnings.warn(
            f"{path} holds the optimizer state of {saved}, but the weights beside it are at {position} "
            f"(the run was stopped between writing the two): resuming with fresh optimizer moments",
            stacklevel=2,
        )
        return
    load_optimizer_tensors(optimizer, tensors, meta)


def checkpoint_identity(path: str | Path) -> str:
    """A short identity of a checkpoint file's content: sha1 of its safetensors header (config, hand,
    step, ...), its size and mtime. Two nodes share prompt tokens only when their identities match,
    so tokens from another checkpoint (or an older version of the same file) are never used."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha1()
    with p.open("rb") as f:
        head = f.read(8)
        h.update(head)
        if len(head) == 8:
            h.update(f.read(min(int.from_bytes(head, "little"), 100 << 20)))
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
