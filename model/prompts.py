"""Prompt encoders: anything that turns strings into the DiT's prompt embeddings.

Nothing here downloads a model. The default world has no text encoder: the DiT then uses its learned
null prompt. A user with a Hugging Face text encoder on disk wraps it in ``HFPromptEncoder``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

Tensor = torch.Tensor


class PromptEncoder(Protocol):
    """Encodes prompts to (embeddings (B, L, caption_channels), mask (B, L)) for ``SanaWMDiT``."""

    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]: ...


class HFPromptEncoder:
    """A Hugging Face tokenizer + encoder (e.g. Gemma-2 for the release's 2304 channels), loaded by
    the caller from local files: the last hidden state is the embedding, the attention mask the mask."""

    def __init__(self, tokenizer: Any, model: Any, max_length: int = 300) -> None:
        self.tokenizer, self.model, self.max_length = tokenizer, model, max_length

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be a list of strings")
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt")
        out = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return out.last_hidden_state, tokens["attention_mask"]
