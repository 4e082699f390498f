"""Snapshots of a wrapped learned world: fork it for planning and come back, wrappers included.

    env = gym.make("SanaWM-v0")
    env.reset(seed=0)
    snapshot = clone_state(env)          # the world and every wrapper's counters (TimeLimit's steps, ...)
    ...                                  # look ahead
    restore_state(env, snapshot)         # back: the same frames, poses, rewards and time left

``env.unwrapped.clone_state()`` snapshots the world alone; under ``gym.make`` the wrappers keep their
own state (``TimeLimit`` counts the steps taken), which must go back with it, or every step after a
restore late in an episode reports ``truncated=True``.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym


def _wrappers(env: gym.Env) -> list[gym.Wrapper]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def _wrapper_state(wrapper: gym.Wrapper) -> dict[str, Any]:
    state = {k: v for k, v in vars(wrapper).items() if k != "env"}
    try:
        return copy.deepcopy(state)
    except Exception as error:  # an open video writer, a socket, ...
        raise TypeError(f"clone_state: the wrapper {type(wrapper).__name__} holds state that cannot be copied ({error})") from error


def clone_state(env: gym.Env) -> dict[str, Any]:
    """A snapshot of ``env`` (a ``SanaWM-v0`` env, wrapped or not): the world's ``clone_state()`` and a
    copy of each wrapper's attributes."""
    if not hasattr(env.unwrapped, "clone_state"):
        raise TypeError(f"clone_state: {type(env.unwrapped).__name__} has no snapshots (SanaWM-v0 has)")
    chain = _wrappers(env)
    return {"world": env.unwrapped.clone_state(), "wrappers": [(type(w).__name__, _wrapper_state(w)) for w in chain]}


def restore_state(env: gym.Env, snapshot: dict[str, Any]) -> None:
    """Put ``env`` back to a ``clone_state(env)`` snapshot (it can be restored again later); the
    wrappers must be the same kinds, in the same order, as when it was taken."""
    if not isinstance(snapshot, dict) or set(snapshot) != {"world", "wrappers"}:
        raise TypeError("restore_state: snapshot must come from sanawm_env.clone_state(env); "
                        "a snapshot of env.unwrapped.clone_state() goes to env.unwrapped.restore_state()")
    chain = _wrappers(env)
    kinds = [type(w).__name__ for w in chain]
    taken = [name for name, _ in snapshot["wrappers"]]
    if kinds != taken:
        raise ValueError(f"restore_state: the snapshot was taken under the wrappers {taken}, this env has {kinds}")
    env.unwrapped.restore_state(snapshot["world"])
    for wrapper, (_, state) in zip(chain, snapshot["wrappers"]):
        vars(wrapper).update(copy.deepcopy(state))
