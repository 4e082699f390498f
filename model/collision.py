"""The collision predictor: does a step's commanded motion run into something, and where along it?

A learned world has no geometry to stop the camera, so ``SanaWM-v0`` asks this small network, kept in
the world folder as ``collision.safetensors`` (``model.world``). From the frame the camera sees before
the step, the step's motion and the direction of gravity in the camera frame it predicts

* the probability that the motion collides (the ground truth's ``collision``: the camera, a sphere,
  touches geometry somewhere along the step), and
* the fraction of the step's raw frames that move freely before the contact.

It is trained on the procedural ground truth, which knows every collision
(``sanawm_env.collision_data``, ``agents.train_collision``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass
class CollisionConfig:
    height: int = 64  # frame size it reads (the world's)
    width: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 64)  # conv widths; each conv halves the frame
    hidden: int = 128  # width of the motion embedding and of the head
    threshold: float = 0.5  # probability from which a step counts as a collision

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        down = 2 ** len(self.channels)
        if self.height <= 0 or self.width <= 0 or self.height % down or self.width % down:
            raise ValueError(f"height and width must be positive multiples of 2 ** len(channels) = {down}, got {self.height} x {self.width}")
        if not self.channels or min(self.channels) <= 0 or self.hidden <= 0:
            raise ValueError(f"channels must be positive widths and hidden positive, got {self.channels}, {self.hidden}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


class CollisionPredictor(nn.Module):
    """A CNN over the frame, an MLP over the motion, and a head over both (``forward``'s docstring).

    The procedural worlds are left-right symmetric in their geometry, so a frame mirrored left to
    right with its motion and gravity mirrored (``mirror``) has the same answer; training uses it."""

    def __init__(self, config: CollisionConfig) -> None:
        super().__init__()
        self.config = config
        widths = (3, *config.channels)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        # Group norm, not batch norm: the env asks about one world at a time as often as about many.
        self.norms = nn.ModuleList(nn.GroupNorm(math.gcd(8, c), c) for c in config.channels)
        down = 2 ** len(config.channels)
        image_features = config.channels[-1] * (config.height // down) * (config.width // down)
        self.image_proj = nn.Linear(image_features, config.hidden)
        self.motion = nn.Sequential(nn.Linear(9, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.hidden))
        self.head = nn.Sequential(nn.Linear(2 * config.hidden, config.hidden), nn.GELU(), nn.Linear(config.hidden, 2))

    def forward(self, images: Tensor, gravity: Tensor, motion: Tensor) -> Tensor:
        """Logits of (collision, free fraction) for M candidate motions from each of B frames.

        Args:
            images: (B, H, W, 3) uint8 frames the camera sees before the step.
            gravity: (B, 3) the world's down direction (its +y axis) in the camera frame.
            motion: (B, M, 6) the steps' motions (dx, dy, dz in metres, droll, dpitch, dyaw in radians,
                camera frame), as the env scales actions.

        Returns:
            (B, M, 2): the collision logit and the logit of the free fraction of the step's frames.
        """
        x = images.permute(0, 3, 1, 2).to(self.image_proj.weight.dtype) / 255.0 - 0.5  # (B, 3, H, W)
        for conv, norm in zip(self.convs, self.norms):
            x = F.gelu(norm(conv(x)))  # halves H and W
        image = self.image_proj(x.flatten(1))  # (B, hidden)
        gravity = gravity.to(image.dtype)[:, None].expand(-1, motion.shape[1], -1)
        moves = self.motion(torch.cat([motion.to(image.dtype), gravity], -1))  # (B, M, hidden)
        return self.head(torch.cat([image[:, None].expand_as(moves), moves], -1))

    @torch.no_grad()
    def predict(self, images: Tensor, gravity: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        """For one motion (B, 6) per frame: the collision probability (B,) and the free fraction (B,)."""
        logits = self(images, gravity, motion[:, None])[:, 0].float()
        return torch.sigmoid(logits[:, 0]), torch.sigmoid(logits[:, 1])


# Mirroring the camera's x axis flips dx, and, of the rotation vector (dpitch, dyaw, droll) about
# (x, y, z), the yaw and the roll; gravity's x flips.
_MIRROR_MOTION = (-1.0, 1.0, 1.0, -1.0, 1.0, -1.0)
_MIRROR_GRAVITY = (-1.0, 1.0, 1.0)


def mirror(images: Tensor, gravity: Tensor, motion: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The left-right mirror image of a predictor's inputs (``CollisionPredictor.forward``'s shapes)."""
    return (images.flip(-2), gravity * gravity.new_tensor(_MIRROR_GRAVITY), motion * motion.new_tensor(_MIRROR_MOTION))
