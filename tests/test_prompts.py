"""Prompt encoders plug into the DiT through a small protocol."""

from types import SimpleNamespace

import pytest
import torch

from model import SanaWMDiT, dit_config
from model.prompts import HFPromptEncoder


class _Tokenizer:
    def __call__(self, prompts, padding, max_length, truncation, return_tensors):
        ids = torch.zeros(len(prompts), max_length, dtype=torch.long)
        mask = torch.zeros(len(prompts), max_length, dtype=torch.long)
        for i, p in enumerate(prompts):
            n = min(len(p.split()), max_length)
            ids[i, :n] = torch.arange(1, n + 1)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask}


class _Encoder(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.emb = torch.nn.Embedding(50, width)

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(last_hidden_state=self.emb(input_ids))


def test_hf_prompt_encoder_feeds_the_dit():
    model = SanaWMDiT(dit_config("tiny")).eval()
    encode = HFPromptEncoder(_Tokenizer(), _Encoder(32), max_length=6)
    embeds, mask = encode(["a red room", "a long corridor with pillars"])
    assert embeds.shape == (2, 6, 32) and mask.tolist()[0] == [1, 1, 1, 0, 0, 0]
    with torch.no_grad():
        out = model(torch.randn(2, 8, 2, 4, 4), torch.full((2, 2), 500.0), embeds, mask)
    assert out.shape == (2, 8, 2, 4, 4)
    with pytest.raises(TypeError, match="list of strings"):
        encode("a red room")
