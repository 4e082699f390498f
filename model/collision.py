"""The collision predictor: does a step's commanded motion run into something, and where along it?

A learned world has no geometry to stop the camera, so ``SanaWM-v0`` asks this small network, kept in
the world folder as ``collision.safetensors`` (``model.world``). It reads the world's first frame, the
camera's pose relative to that frame, the step's motion and the direction of gravity in the camera
frame, and predicts

* the probability that the motion collides (the ground truth's ``collision``: the camera, a sphere,
  touches geometry somewhere along the step), and
* the fraction of the step's raw frames that move freely before the contact.

Why the first frame and not the one the camera sees now: frame 0 is the one true view of an imagined
world (the image it was started from, a render or the user's photo), while later frames are the
world's own guesses, which do not show walls where the true world has them (a predictor reading them
found 8% of true collisions; benchmarks/RESULTS.md, "Collision predictor"). Reading frame 0 and poses
only, the predictor sees the same inputs in ``SanaWM-v0`` as in the ground truth it is trained on
(``sanawm_env.collision_data``, ``agents.train_collision``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .camera import se3_inverse

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
    """A CNN over the first frame, an MLP over the pose, gravity and motion, and a head over both
    (``forward``'s docstring).

    The procedural worlds are left-right symmetric in their geometry, so inputs mirrored left to right
    (``mirror``) have the same answer; training uses it."""

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
        h = config.hidden
        self.motion = nn.Sequential(nn.Linear(21, h), nn.GELU(), nn.Linear(h, h), nn.GELU(), nn.Linear(h, h))
        self.head = nn.Sequential(nn.Linear(2 * h, h), nn.GELU(), nn.Linear(h, 2))

    def forward(self, first: Tensor, pose: Tensor, gravity: Tensor, motion: Tensor) -> Tensor:
        """Logits of (collision, free fraction) for M candidate motions from each of B cameras.

        Args:
            first: (B, H, W, 3) uint8 first frame of each camera's world (frame 0 of its episode).
            pose: (B, 4, 4) the camera's pose in the first frame's camera coordinates
                (``inverse(first_c2w) @ c2w``, metres).
            gravity: (B, 3) the world's down direction (its +y axis) in the camera frame.
            motion: (B, M, 6) the steps' motions (dx, dy, dz in metres, droll, dpitch, dyaw in radians,
                camera frame), as the env scales actions.

        Returns:
            (B, M, 2): the collision logit and the logit of the free fraction of the step's frames.
        """
        dtype = self.image_proj.weight.dtype
        x = first.permute(0, 3, 1, 2).to(dtype) / 255.0 - 0.5  # (B, 3, H, W)
        for conv, norm in zip(self.convs, self.norms):
            x = F.gelu(norm(conv(x)))  # halves H and W
        image = self.image_proj(x.flatten(1))  # (B, hidden)
        moves = self.motion(motion_features(pose, gravity, motion).to(dtype))  # (B, M, hidden)
        return self.head(torch.cat([image[:, None].expand_as(moves), moves], -1))

    @torch.no_grad()
    def predict(self, first: Tensor, pose: Tensor, gravity: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        """For one motion (B, 6) per camera: the collision probability (B,) and the free fraction (B,)."""
        logits = self(first, pose, gravity, motion[:, None])[:, 0].float()
        return torch.sigmoid(logits[:, 0]), torch.sigmoid(logits[:, 1])


def relative_pose(first_c2w: Tensor, c2w: Tensor) -> Tensor:
    """Camera poses ``c2w`` (..., 4, 4) in the camera coordinates of ``first_c2w`` (..., 4, 4): the
    predictor's ``pose`` input, as the env and the training script both build it."""
    return se3_inverse(first_c2w) @ c2w


def motion_features(pose: Tensor, gravity: Tensor, motion: Tensor) -> Tensor:
    """(B, M, 21): each motion (6) beside its camera's gravity (3) and pose, translation (3) and rotation (9)."""
    where = torch.cat([gravity, pose[:, :3, 3], pose[:, :3, :3].flatten(1)], -1).to(motion.dtype)  # (B, 15)
    return torch.cat([motion, where[:, None].expand(-1, motion.shape[1], -1)], -1)


# Mirroring the camera's x axis flips dx, and, of the rotation vector (dpitch, dyaw, droll) about
# (x, y, z), the yaw and the roll; gravity's x flips; a pose P becomes S P S with S = diag(-1, 1, 1, 1).
_MIRROR_MOTION = (-1.0, 1.0, 1.0, -1.0, 1.0, -1.0)
_MIRROR_AXES = (-1.0, 1.0, 1.0)


def mirror(first: Tensor, pose: Tensor, gravity: Tensor, motion: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The left-right mirror image of a predictor's inputs (``CollisionPredictor.forward``'s shapes)."""
    s = pose.new_tensor([*_MIRROR_AXES, 1.0])
    return (first.flip(-2), s[:, None] * pose * s, gravity * gravity.new_tensor(_MIRROR_AXES), motion * motion.new_tensor(_MIRROR_MOTION))
