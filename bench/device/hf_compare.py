#!/usr/bin/env python3
"""Numerics check of mps-actors against Hugging Face transformers, on the device machine.

  hf_compare.py make-input IN.json SEED VOCAB      writes a ragged batch (padding, token types)
  hf_compare.py compare MODEL_DIR IN.json OURS.json REPORT.json
      runs transformers.BertModel in float64 on the same folder and inputs and reports the relative L2
      error of mps-actors' last_hidden_state, pooler_output and (when OURS.json has one) the mean-pooled,
      normalized "embedding" (sentence-transformers' pooling of the float64 hidden states over the attention
      mask) against it (fails above LIMIT, default 1e-4). Outputs OURS.json lacks are not compared.
"""
import json
import random
import sys


def make_input(path, seed, vocab):
    rng = random.Random(int(seed))
    lengths = [64, 37, 5]
    seq = max(lengths)
    ids, mask, types = [], [], []
    for n in lengths:
        ids.append([rng.randrange(int(vocab)) for _ in range(n)] + [0] * (seq - n))
        mask.append([1] * n + [0] * (seq - n))
        types.append([0] * (n // 2) + [1] * (n - n // 2) + [0] * (seq - n))
    with open(path, "w") as f:
        json.dump({"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, f)


def rel_l2(a, b):
    import torch
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def compare(model_dir, in_path, ours_path, report_path, limit="1e-4"):
    import torch
    import transformers
    from transformers import BertModel
    torch.set_num_threads(8)
    try:
        model = BertModel.from_pretrained(model_dir, dtype=torch.float64, attn_implementation="eager")
    except TypeError:
        model = BertModel.from_pretrained(model_dir, torch_dtype=torch.float64, attn_implementation="eager")
    model.eval()
    inputs = json.load(open(in_path))
    with torch.no_grad():
        out = model(input_ids=torch.tensor(inputs["input_ids"]),
                    attention_mask=torch.tensor(inputs["attention_mask"]),
                    token_type_ids=torch.tensor(inputs["token_type_ids"]))
    ours = json.load(open(ours_path))
    mask = torch.tensor(inputs["attention_mask"], dtype=torch.bool)
    report = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "config": json.load(open(model_dir + "/config.json")),
        "batch_lengths": [int(m.sum()) for m in mask],
    }
    if "last_hidden_state" in ours:
        hidden = torch.tensor(ours["last_hidden_state"], dtype=torch.float64)
        report["rel_l2_last_hidden_state_all_positions"] = rel_l2(hidden, out.last_hidden_state)
        report["rel_l2_last_hidden_state_real_tokens"] = rel_l2(hidden[mask], out.last_hidden_state[mask])
    if "pooler_output" in ours:
        report["rel_l2_pooler_output"] = rel_l2(torch.tensor(ours["pooler_output"], dtype=torch.float64),
                                                out.pooler_output)
    if "embedding" in ours:
        m = mask.unsqueeze(-1).to(torch.float64)
        want = torch.nn.functional.normalize((out.last_hidden_state * m).sum(1) / m.sum(1), dim=-1)
        report["rel_l2_embedding_mean_normalized"] = rel_l2(torch.tensor(ours["embedding"], dtype=torch.float64),
                                                            want)
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    worst = max(v for k, v in report.items() if k.startswith("rel_l2") and not k.endswith("real_tokens"))
    sys.exit(0 if worst < float(limit) else 1)


if __name__ == "__main__":
    if sys.argv[1] == "make-input":
        make_input(*sys.argv[2:5])
    elif sys.argv[1] == "compare":
        compare(*sys.argv[2:7])
    else:
        sys.exit(__doc__)
