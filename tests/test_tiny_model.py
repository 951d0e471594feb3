import json

import pytest

from tests.helpers import run_cli


def test_tiny_model_loads_and_generates(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    inputs = tokenizer("def add(a, b):\n    return", return_tensors="pt")
    # The tokenizer was trained here, on code: it round-trips code exactly.
    assert tokenizer.decode(inputs["input_ids"][0]) == "def add(a, b):\n    return"
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5


@pytest.mark.slow
def test_tiny_model_cli_writes_a_loadable_folder(tmp_path):
    assert run_cli("tiny-model", tmp_path / "m") == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    assert (tmp_path / "m" / "tokenizer.json").is_file()
