"""Sharded data folders: safetensors shards beside a JSON index, written so that an interrupted run
leaves a readable prefix that a resumed run continues. The clip folders of ``sanawm data generate``
(``model.clips``), the rollout data sets of ``sanawm rollouts`` (``agents.rollout_data``) and the
collision samples (``sanawm_env.collision_data``) are all such folders.

A folder of format ``fmt`` (a ``ShardFormat`` whose items are called ``fmt.unit``, e.g. ``clips``):

* ``index.json``: ``{"format": fmt.name, "version": fmt.version, "num_<unit>", "complete",
  "shards": [{"file", "<unit>"}], ...}`` plus the format's own settings (``fmt.settings``), which a
  resumed run must repeat.
* ``shard-00000.safetensors`` ...: the arrays of the shard's items, as the format packs them.

Every shard is written under a temporary name and renamed, then the index is rewritten (also
atomically), so the index only ever names whole shards; ``complete`` turns true when the writer closes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import write_text_atomic
from .jsonfile import read_json_object

Item = dict[str, np.ndarray]


@dataclass(frozen=True)
class ShardFormat:
    """What tells one kind of sharded folder from another."""

    name: str  # the index's "format"
    version: int  # the index's "version"; a reader refuses any other
    unit: str  # what an item is called in the index: "num_<unit>" and each shard's "<unit>"
    command: str  # the command that writes such folders, for error messages (e.g. "sanawm data generate")
    resume: str  # how a user continues an interrupted one (e.g. "sanawm data generate --resume", same arguments)
    settings: dict[str, type | tuple[type, ...]] = field(default_factory=dict)  # the format's own index fields and their JSON types
    check: Callable[[Path, dict[str, Any]], None] | None = None  # the format's own checks of an index (errors name the path)


def stack_items(items: list[Item]) -> Item:
    """The default packing: every key's arrays stacked along a new first axis (items of one shape)."""
    if any(item.keys() != items[0].keys() for item in items):
        raise ValueError(f"every item of a shard needs the same fields; got {sorted({k for item in items for k in item})}")
    return {k: np.stack([item[k] for item in items]) for k in items[0]}


def read_index(path: Path, fmt: ShardFormat) -> dict[str, Any]:
    """The ``index.json`` at ``path`` checked against ``fmt`` field by field; errors name the file and the field."""
    index = read_json_object(path)
    if index.get("format") != fmt.name or index.get("version") != fmt.version:
        raise ValueError(f"{path}: not a {fmt.name} v{fmt.version} index (found {(index.get('format'), index.get('version'))!r})")
    count = f"num_{fmt.unit}"
    for key, kind in {count: int, "complete": bool, "shards": list, **fmt.settings}.items():
        if not isinstance(index.get(key), kind) or (kind is int and isinstance(index[key], bool)):
            raise ValueError(f"{path}: field {key!r} must be {getattr(kind, '__name__', 'a number')}, got {index.get(key)!r}")
    for i, shard in enumerate(index["shards"]):
        n = shard.get(fmt.unit) if isinstance(shard, dict) else None
        if not (isinstance(shard.get("file"), str) and isinstance(n, int) and not isinstance(n, bool) and n > 0):
            raise ValueError(f"{path}: shards[{i}] must be {{'file': str, '{fmt.unit}': positive int}}, got {shard!r}")
        if not (path.parent / shard["file"]).is_file():
            raise FileNotFoundError(f"{path}: shards[{i}] names {shard['file']}, which is not in {path.parent}")
    held = sum(s[fmt.unit] for s in index["shards"])
    if index[count] != held:
        raise ValueError(f"{path}: {count} is {index[count]} but the shards hold {held}")
    if fmt.check is not None:
        fmt.check(path, index)
    return index


def open_index(root: Path, fmt: ShardFormat, allow_incomplete: bool) -> dict[str, Any]:
    """The checked index of the folder ``root``, for reading: a folder without one, or an interrupted
    one (unless ``allow_incomplete``), fails with what to do."""
    path = root / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"{root} has no index.json; is it a folder written by `{fmt.command}`?")
    index = read_index(path, fmt)
    if not index["complete"] and not allow_incomplete:
        raise ValueError(f"{root}: an interrupted dataset ({index[f'num_{fmt.unit}']} {fmt.unit} so far); finish it with "
                         f"`{fmt.resume}` (same arguments) or read it as it is with allow_incomplete=True")
    return index


def read_shard(path: Path, required: tuple[str, ...], rows: Callable[[str], int | slice | None]) -> dict[str, torch.Tensor]:
    """Of every array in the safetensors shard ``path``, the part ``rows(key)`` along its first axis (a
    row or a slice; None leaves the array out); a damaged shard, a missing ``required`` array or a
    short one fails with the path."""
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            missing = sorted(set(required) - keys)
            if missing:
                raise ValueError(f"{path}: the shard has no {missing} (it holds {sorted(keys)})")
            parts = {k: rows(k) for k in sorted(keys)}
            slices = {k: f.get_slice(k) for k, p in parts.items() if p is not None}
            ends = {k: (parts[k] + 1 if isinstance(parts[k], int) else parts[k].stop) for k in slices}
            short = sorted(k for k, v in slices.items() if v.get_shape()[0] < ends[k])
            if short:
                raise ValueError(f"{path}: {short} end before the rows asked for; the index and the shard disagree")
            return {k: v[parts[k]] for k, v in slices.items()}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a readable safetensors shard ({e})") from e


class ShardWriter:
    """Writes items into a sharded folder of format ``fmt`` (see the module docstring).

    ``settings`` go into the index (a resumed run must bring the same); ``per_shard`` items make a
    shard; ``pack`` turns a shard's items into its arrays (``stack_items`` by default). A folder that
    holds a complete data set is refused; an interrupted one is continued with ``resume`` (its
    finished shards kept) and refused without it; any other non-empty folder is refused.
    """

    def __init__(self, out_dir: str | Path, fmt: ShardFormat, settings: dict[str, Any], per_shard: int, resume: bool = False,
                 pack: Callable[[list[Item]], Item] = stack_items) -> None:
        if not isinstance(per_shard, (int, np.integer)) or per_shard <= 0:
            raise ValueError(f"{fmt.unit}_per_shard must be a positive int, got {per_shard!r}")
        self.out_dir, self.fmt, self.per_shard, self.pack = Path(out_dir), fmt, int(per_shard), pack
        self.settings = json.loads(json.dumps(settings))  # as the index holds them: tuples become lists
        self.shards: list[dict[str, Any]] = []
        self._pending: list[Item] = []
        if (self.out_dir / "index.json").exists():
            self._continue(resume)
        elif self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise FileExistsError(f"{self.out_dir} is not empty and holds no dataset of ours (no index.json); "
                                  "choose a new or empty folder, nothing in it is overwritten")
        self.out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def num_items(self) -> int:
        """Items added so far (a resumed data set starts with those of its finished shards)."""
        return sum(s[self.fmt.unit] for s in self.shards) + len(self._pending)

    def _continue(self, resume: bool) -> None:
        """Take up the interrupted data set in ``out_dir``: the same settings, its finished shards kept."""
        path, unit = self.out_dir / "index.json", self.fmt.unit
        index = read_index(path, self.fmt)
        if index["complete"]:
            raise FileExistsError(f"{self.out_dir} already holds a complete dataset ({index[f'num_{unit}']} {unit}); choose another folder")
        if not resume:
            raise FileExistsError(f"{self.out_dir} holds an interrupted dataset ({index[f'num_{unit}']} {unit} so far); "
                                  f"continue it with resume (`{self.fmt.resume}`) or choose another folder")
        for key, value in self.settings.items():
            if index.get(key) != value:
                raise ValueError(f"{path}: cannot resume: it was written with {key}={index.get(key)!r}, this run has {value!r}")
        if any(s[unit] != self.per_shard for s in index["shards"]):
            raise ValueError(f"{path}: cannot resume: its shards hold {[s[unit] for s in index['shards']]} {unit}, "
                             f"this run writes {self.per_shard} per shard")
        for stale in self.out_dir.glob("*.tmp"):  # a shard the interruption cut short
            stale.unlink()
        self.shards = list(index["shards"])

    def add(self, item: Item) -> None:
        """Queue one item (its arrays by key); a full shard is written at once."""
        self._pending.append(item)
        if len(self._pending) == self.per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        name = f"shard-{len(self.shards):05d}.safetensors"
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.pack(self._pending).items()}
        tmp = self.out_dir / (name + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": self.fmt.name, "version": str(self.fmt.version)})
        os.replace(tmp, self.out_dir / name)
        self.shards.append({"file": name, self.fmt.unit: len(self._pending)})
        self._pending = []
        self._write_index(complete=False)

    def _write_index(self, complete: bool) -> None:
        index = {"format": self.fmt.name, "version": self.fmt.version, **self.settings,
                 f"num_{self.fmt.unit}": sum(s[self.fmt.unit] for s in self.shards), "complete": complete, "shards": self.shards}
        write_text_atomic(self.out_dir / "index.json", json.dumps(index, indent=2))

    def close(self) -> Path:
        """Write the last shard and mark the data set complete; returns the folder."""
        self._flush()
        self._write_index(complete=True)
        return self.out_dir

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        if exc_type is None:
            self.close()
