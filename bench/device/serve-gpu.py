"""The device check of `bin/mps-actors serve` on a GPU (serve-gpu.sh).

make DIR: a MiniLM-shaped BERT (hidden 384, 6 layers, 12 heads, vocabulary 30522) with transformers' own
random initialisation, saved as a Hugging Face folder, with all-MiniLM-L6-v2's tokenizer.json copied in.
compare DIR TEXTS.json EMBED.json OUT.json: transformers in float64 on the CPU, mean pooling over the
attention mask and L2 normalisation, against what the server's /embed returned; relative L2 per text.
"""
import json
import shutil
import sys

import torch


def make(folder, tokenizer):
    from transformers import BertConfig, BertModel
    torch.manual_seed(20261202)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    shutil.copy(tokenizer, f"{folder}/tokenizer.json")


def compare(folder, texts_path, embed_path, out_path):
    from tokenizers import Tokenizer
    from transformers import BertModel
    texts = json.load(open(texts_path))
    ours = json.load(open(embed_path))
    tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
    tok.no_padding()
    model = BertModel.from_pretrained(folder, torch_dtype=torch.float64).eval()
    worst, rows = 0.0, []
    with torch.no_grad():
        for text, mine in zip(texts, ours):
            ids = tok.encode(text).ids
            h = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
            ref = h.mean(0)
            ref = ref / ref.norm()
            got = torch.tensor(mine, dtype=torch.float64)
            rel = float((got - ref).norm() / ref.norm())
            worst = max(worst, rel)
            rows.append({"tokens": len(ids), "relative_l2": rel})
    result = {"texts": len(texts), "worst_relative_l2": worst, "per_text": rows}
    json.dump(result, open(out_path, "w"), indent=2)
    print(f"/embed on the GPU vs transformers float64: {len(texts)} texts, worst relative L2 {worst:.2e}")
    return worst


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        sys.exit(0 if compare(*sys.argv[2:6]) < float(sys.argv[6]) else 1)
