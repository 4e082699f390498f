"""Latent shards: clips encoded once by the VAE, with the DiT's camera inputs, read by every stage
after ``latents``.

A latent folder:

* ``index.json``: ``{"format": "sanawm-latents", "version": 1, "latent_frames", "channels",
  "grid": [h, w], "image_size": [H, W], "fps", "num_clips", "complete", "source", "shards": [...]}``.
* ``vae.safetensors``: the VAE that made the latents (samples and exported worlds decode with it).
* ``shard-00000.safetensors`` ...: ``latents`` float32 (N, C, T, h, w), normalised as the DiT sees
  them; ``camera`` float32 (N, T, 20) and ``plucker`` float32 (N, 6 s, T, h, w) from
  ``model.camera_conditions``; ``first_frame`` uint8 (N, H, W, 3); ``c2w`` float32 (N, F, 4, 4) and
  ``intrinsics`` float32 (N, F, 4) of the raw frames.

Shards and the index are written under temporary names and renamed, the index after every shard.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.utils.data import Dataset
from tqdm import tqdm

from ..atomic import write_text_atomic
from ..camera_conditions import camera_conditions
from ..clips import open_clips, read_shard_row
from ..vae import CausalVideoVAE

FORMAT, VERSION = "sanawm-latents", 1
KEYS = ("latents", "camera", "plucker", "first_frame", "c2w", "intrinsics")


def usable_frames(frames: int, stride: int) -> int:
    """Raw frames of a clip the causal VAE can take: the longest 1 + stride * k not above ``frames``."""
    return 1 + (frames - 1) // stride * stride


def video_tensor(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (B, F, H, W, 3) -> video (B, 3, F, H, W) in [-1, 1]."""
    return frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1


@torch.no_grad()
def encode_clips(data: str | Path, out: str | Path, vae: CausalVideoVAE, vae_file: str | Path, clips_per_shard: int = 64,
                 device: torch.device | str = "cpu", progress: bool = True) -> Path:
    """Encode every clip of ``data`` (a clip folder or RealEstate10K-style files) into ``out``."""
    out = Path(out)
    if (out / "index.json").exists():
        raise FileExistsError(f"{out} already holds latents (index.json); choose another out")
    dataset = open_clips(data)
    if len(dataset) == 0:
        raise ValueError(f"{data}: the folder holds no clips")
    first = dataset[0]
    f, h, w = first["frames"].shape[:3]
    s, p = vae.temporal_stride, vae.spatial_stride
    if h % p or w % p:
        raise ValueError(f"{data}: frames are {h} x {w}, not divisible by the VAE's spatial stride {p}")
    frames = usable_frames(f, s)
    if frames < 1 + s:
        raise ValueError(f"{data}: clips have {f} frames; the VAE needs at least {1 + s} (1 + {s} k)")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vae_file, out / "vae.safetensors.tmp")
    os.replace(out / "vae.safetensors.tmp", out / "vae.safetensors")
    vae = vae.to(device).eval()
    index: dict[str, Any] = {"format": FORMAT, "version": VERSION, "latent_frames": (frames - 1) // s + 1, "channels": vae.latent_channels,
                             "grid": [h // p, w // p], "image_size": [h, w], "fps": float(first["fps"]), "num_clips": 0,
                             "complete": False, "source": str(data), "shards": []}
    pending: dict[str, list[torch.Tensor]] = {k: [] for k in KEYS}

    def flush() -> None:
        name = f"shard-{len(index['shards']):05d}.safetensors"
        tensors = {k: torch.stack(v).contiguous() for k, v in pending.items()}
        save_file(tensors, str(out / (name + ".tmp")))
        os.replace(out / (name + ".tmp"), out / name)
        index["shards"].append({"file": name, "clips": len(pending["latents"])})
        index["num_clips"] += len(pending["latents"])
        for v in pending.values():
            v.clear()
        write_text_atomic(out / "index.json", json.dumps(index, indent=1))

    for i in tqdm(range(len(dataset)), desc="encode", unit="clip", disable=not progress):
        item = dataset[i]
        if tuple(item["frames"].shape[1:3]) != (h, w) or item["frames"].shape[0] < frames:
            raise ValueError(f"{data}: clip {i} has frames {tuple(item['frames'].shape)}, the first clip {(f, h, w, 3)}; clips must share size and length")
        if "c2w" not in item:
            raise ValueError(f"{data}: clip {i} has no camera poses (c2w)")
        c2w, k = item["c2w"][:frames].float(), item["intrinsics"][:frames].float()
        video = video_tensor(item["frames"][None, :frames]).to(device)
        pending["latents"].append(vae.encode(video)[0].float().cpu())
        camera, plucker = camera_conditions(c2w, k, (h, w), (s, p, p))
        pending["camera"].append(camera)
        pending["plucker"].append(plucker)
        pending["first_frame"].append(item["frames"][0])
        pending["c2w"].append(c2w)
        pending["intrinsics"].append(k)
        if len(pending["latents"]) == clips_per_shard:
            flush()
    if pending["latents"]:
        flush()
    index["complete"] = True
    write_text_atomic(out / "index.json", json.dumps(index, indent=1))
    return out


class LatentDataset(Dataset):
    """Reads a latent folder; items hold the first ``latent_frames`` latent frames of a clip (all
    clips start at their frame 0, the image condition) and ``index``, the clip's number."""

    def __init__(self, root: str | Path, latent_frames: int | None = None) -> None:
        self.root = Path(root)
        path = self.root / "index.json"
        if not path.exists():
            raise FileNotFoundError(f"{self.root}: not a latent folder (no index.json); make one with stage=latents")
        self.index = json.loads(path.read_text())
        if self.index.get("format") != FORMAT or self.index.get("version") != VERSION:
            raise ValueError(f"{path}: not a {FORMAT} v{VERSION} index (format={self.index.get('format')!r}); "
                             "stages after `latents` read latent folders, not clip folders")
        if not self.index.get("complete"):
            raise ValueError(f"{path}: an interrupted latents stage ({self.index.get('num_clips')} clips so far); "
                             "run stage=latents again into a new folder")
        if self.index["num_clips"] == 0:
            raise ValueError(f"{self.root}: the latent folder holds no clips")
        self.frames = self.index["latent_frames"] if latent_frames is None else latent_frames
        if self.frames > self.index["latent_frames"]:
            raise ValueError(f"{path}: clips have {self.index['latent_frames']} latent frames, latent_frames={self.frames} asked")
        self._locations = [(s["file"], i) for s in self.index["shards"] for i in range(s["clips"])]

    @property
    def vae_file(self) -> Path:
        return self.root / "vae.safetensors"

    def __len__(self) -> int:
        return len(self._locations)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        file, row = self._locations[i]
        t = self.frames
        item = {k: v for k, v in read_shard_row(self.root / file, row, KEYS).items() if k in KEYS}
        item["latents"] = item["latents"][:, :t]
        item["camera"] = item["camera"][:t]
        item["plucker"] = item["plucker"][:, :t]
        raw = (t - 1) * (item["c2w"].shape[0] - 1) // (self.index["latent_frames"] - 1) + 1
        item["c2w"], item["intrinsics"] = item["c2w"][:raw], item["intrinsics"][:raw]
        item["index"] = torch.tensor(i)
        return item
