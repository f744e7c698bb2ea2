#!/usr/bin/env python3
"""Families and tokenizer checks of mps-actors against Hugging Face, on the device machine (families.sh).

  families.py make ROOT                 random folders made by each family's own transformers config class
                                        (BertConfig, RobertaConfig, XLMRobertaConfig, DistilBertConfig, MPNetConfig,
                                        *ForSequenceClassification), a ragged input per folder, ROOT/cases.json
  families.py compare ROOT MODE OURS_DIR REPORT.json
                                        transformers in float64 on each folder's input against mps-actors' outputs
                                        (OURS_DIR/CASE.json): relative L2 of last_hidden_state, pooler_output, logits
  families.py reference ROOT            transformers' float64 outputs of each case as ROOT/hf/CASE.json, so that a
                                        backend the device bundle does not carry can be compared elsewhere
  families.py compare-json ROOT MODE OURS_DIR REPORT.json
                                        compare against ROOT/hf (numpy only, no torch): the same report as compare
  families.py table REPORT.json...      one table of every report
  families.py sentences OUT.jsonl N     N varied sentences (accents, CJK, emoji, code, URLs, whitespace, over-long)
  families.py tokens TOKENIZER.json MAX IN.jsonl OURS.jsonl REPORT.json
                                        Python tokenizers' ids (truncation at MAX, no padding) against mps-actors'
Only `sentences` runs without torch and tokenizers.
"""
import json
import os
import random
import sys

SEQ = [150, 97, 5]  # a ragged batch: full, middle, short; MPNet's distances pass its 128 limit

# name, transformers config class, model class, config keywords
CASES = [
    ("bert-gelu-3labels", "BertConfig", "BertForSequenceClassification", dict(hidden_act="gelu", num_labels=3)),
    ("bert-gelu_new", "BertConfig", "BertModel", dict(hidden_act="gelu_new")),
    ("bert-relu-2labels", "BertConfig", "BertForSequenceClassification", dict(hidden_act="relu", num_labels=2)),
    ("roberta-1label", "RobertaConfig", "RobertaForSequenceClassification",
     dict(num_labels=1, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)),
    ("roberta", "RobertaConfig", "RobertaModel", dict(type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)),
    ("xlm-roberta-2labels", "XLMRobertaConfig", "XLMRobertaForSequenceClassification",
     dict(num_labels=2, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)),
    ("distilbert-4labels", "DistilBertConfig", "DistilBertForSequenceClassification", dict(num_labels=4)),
    ("distilbert-sinusoidal-relu", "DistilBertConfig", "DistilBertModel",
     dict(sinusoidal_pos_embds=True, activation="relu")),
    ("mpnet-2labels", "MPNetConfig", "MPNetForSequenceClassification", dict(num_labels=2, layer_norm_eps=1e-5)),
    ("mpnet", "MPNetConfig", "MPNetModel", dict(layer_norm_eps=1e-5)),
]
LIMITS = {"cpu-fp32": 1e-5, "cuda-fp32": 1e-5, "cuda-fp16": 1e-2}


def sizes(config_class):
    if config_class == "DistilBertConfig":
        return dict(vocab_size=1000, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=160)
    positions = 160 if config_class == "BertConfig" else 162  # RoBERTa-style positions start past padding_idx
    return dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                max_position_embeddings=positions)


def pad_id(config_class):
    return 1 if config_class in ("RobertaConfig", "XLMRobertaConfig", "MPNetConfig") else 0


def make(root):
    import torch
    import transformers
    torch.manual_seed(20261201)
    cases = []
    for name, config_class, model_class, extra in CASES:
        config = getattr(transformers, config_class)(initializer_range=0.2, **sizes(config_class), **extra)
        model = getattr(transformers, model_class)(config).to(torch.float32).eval()
        with torch.no_grad():  # perturb every parameter (biases and LayerNorms too), but keep a sinusoidal table
            for pname, p in model.named_parameters():
                if not (extra.get("sinusoidal_pos_embds") and "position_embeddings" in pname):
                    p.add_(0.05 * torch.randn_like(p))
        folder = os.path.join(root, name)
        model.save_pretrained(folder)
        rng = random.Random(name)
        pad = pad_id(config_class)
        seq = max(SEQ)
        ids = [[rng.randrange(5, 1000) for _ in range(n)] + [pad] * (seq - n) for n in SEQ]
        inputs = {"input_ids": ids, "attention_mask": [[1] * n + [0] * (seq - n) for n in SEQ]}
        if config_class == "BertConfig":
            inputs["token_type_ids"] = [[0] * (n // 2) + [1] * (n - n // 2) + [0] * (seq - n) for n in SEQ]
        with open(os.path.join(root, name + "-in.json"), "w") as f:
            json.dump(inputs, f)
        base = model.base_model
        outputs = ["last_hidden_state"]
        if getattr(base, "pooler", None) is not None:
            outputs.append("pooler_output")
        if "ForSequenceClassification" in model_class:
            outputs.append("logits")
        cases.append({"name": name, "model_class": model_class, "outputs": ",".join(outputs)})
    with open(os.path.join(root, "cases.json"), "w") as f:
        json.dump(cases, f, indent=2)
    print("\n".join(f"{c['name']} {c['outputs']}" for c in cases))


def rel_l2(a, b):
    import torch
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def compare(root, mode, ours_dir, report_path):
    import torch
    import transformers
    torch.set_num_threads(8)
    report = {"mode": mode, "limit": LIMITS[mode], "transformers": transformers.__version__, "torch": torch.__version__,
              "batch_lengths": SEQ, "cases": {}}
    ok = True
    for case in json.load(open(os.path.join(root, "cases.json"))):
        name = case["name"]
        folder = os.path.join(root, name)
        ours_path = os.path.join(ours_dir, name + ".json")
        if not os.path.exists(ours_path):
            report["cases"][name] = {"error": "mps-actors produced no output"}
            ok = False
            continue
        cls = getattr(transformers, case["model_class"])
        model = cls.from_pretrained(folder, dtype=torch.float64, attn_implementation="eager").eval()
        inputs = {k: torch.tensor(v) for k, v in json.load(open(os.path.join(root, name + "-in.json"))).items()}
        with torch.no_grad():
            body = model.base_model(**inputs)
            logits = model(**inputs).logits if "logits" in case["outputs"] else None
        ours = json.load(open(ours_path))
        mask = inputs["attention_mask"].bool()
        hidden = torch.tensor(ours["last_hidden_state"], dtype=torch.float64)
        r = {"last_hidden_state": rel_l2(hidden, body.last_hidden_state),
             "last_hidden_state_real_tokens": rel_l2(hidden[mask], body.last_hidden_state[mask])}
        if "pooler_output" in case["outputs"]:
            r["pooler_output"] = rel_l2(torch.tensor(ours["pooler_output"], dtype=torch.float64), body.pooler_output)
        if logits is not None:
            r["logits"] = rel_l2(torch.tensor(ours["logits"], dtype=torch.float64), logits)
        worst = max(v for k, v in r.items() if not k.endswith("real_tokens"))
        r["pass"] = worst < LIMITS[mode]
        ok &= r["pass"]
        report["cases"][name] = r
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
    return ok


def reference(root):
    import torch
    import transformers
    torch.set_num_threads(8)
    os.makedirs(os.path.join(root, "hf"), exist_ok=True)
    for case in json.load(open(os.path.join(root, "cases.json"))):
        name = case["name"]
        model = getattr(transformers, case["model_class"]).from_pretrained(
            os.path.join(root, name), dtype=torch.float64, attn_implementation="eager").eval()
        inputs = {k: torch.tensor(v) for k, v in json.load(open(os.path.join(root, name + "-in.json"))).items()}
        with torch.no_grad():
            body = model.base_model(**inputs)
            out = {"last_hidden_state": body.last_hidden_state.tolist()}
            if "pooler_output" in case["outputs"]:
                out["pooler_output"] = body.pooler_output.tolist()
            if "logits" in case["outputs"]:
                out["logits"] = model(**inputs).logits.tolist()
        with open(os.path.join(root, "hf", name + ".json"), "w") as f:
            json.dump(out, f)


def compare_json(root, mode, ours_dir, report_path):
    import numpy as np
    report = {"mode": mode, "limit": LIMITS[mode], "reference": "transformers float64 outputs (families.py reference)",
              "batch_lengths": SEQ, "cases": {}}
    ok = True
    for case in json.load(open(os.path.join(root, "cases.json"))):
        name = case["name"]
        ours_path = os.path.join(ours_dir, name + ".json")
        if not os.path.exists(ours_path):
            report["cases"][name] = {"error": "mps-actors produced no output"}
            ok = False
            continue
        ours = json.load(open(ours_path))
        hf = json.load(open(os.path.join(root, "hf", name + ".json")))
        mask = np.array(json.load(open(os.path.join(root, name + "-in.json")))["attention_mask"], dtype=bool)
        l2 = lambda a, b: float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64))
                                / np.linalg.norm(np.asarray(b, np.float64)))
        hidden, ref = np.asarray(ours["last_hidden_state"]), np.asarray(hf["last_hidden_state"])
        r = {"last_hidden_state": l2(hidden, ref), "last_hidden_state_real_tokens": l2(hidden[mask], ref[mask])}
        for key in ("pooler_output", "logits"):
            if key in hf:
                r[key] = l2(ours[key], hf[key])
        worst = max(v for k, v in r.items() if not k.endswith("real_tokens"))
        r["pass"] = worst < LIMITS[mode]
        ok &= r["pass"]
        report["cases"][name] = r
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
    return ok


def table(paths):
    reports = [json.load(open(p)) for p in paths]
    print(f"| case | {' | '.join(r['mode'] for r in reports)} |")
    print("| --- |" + " --- |" * len(reports))
    for name in reports[0]["cases"]:
        cells = []
        for r in reports:
            c = r["cases"].get(name, {})
            if "error" in c or not c:
                cells.append("no output")
            else:
                parts = [f"{k.replace('last_hidden_state', 'hidden')} {v:.1e}" for k, v in c.items()
                         if k != "pass" and not k.endswith("real_tokens")]
                cells.append(", ".join(parts) + ("" if c["pass"] else " **FAIL**"))
        print(f"| {name} | {' | '.join(cells)} |")


WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Transformer", "tokenization", "GPU",
         "naïve", "café", "façade", "Ångström", "Zoë", "über", "jalapeño", "coöperate", "résumé", "São", "Paulo",
         "東京", "日本語", "中文", "北京大学", "한국어", "서울", "Привет", "мир", "مرحبا", "שלום", "สวัสดี", "नमस्ते",
         "😀", "🚀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "∑", "√2", "½", "№", "™", "©", "—", "…", "«quoted»", "'single'",
         "e\u0301", "A\u030a", "ﬁ", "Ｆｕｌｌｗｉｄｔｈ", "x²", "3.14159", "1,000,000", "2026-12-01", "#hashtag", "@user",
         "don't", "it's", "C++", "node.js", "snake_case", "camelCase", "UPPER", "MiXeD"]
CODE = ["def f(x): return x**2", "for (int i = 0; i < n; i++) { a[i] += b[i]; }", "SELECT * FROM t WHERE id = 42;",
        "<div class=\"a\">hi</div>", "{\"key\": [1, 2, {\"nested\": null}]}", "fn main() { println!(\"hi\"); }",
        "x = lambda y: y if y else None  # comment", "#include <stdio.h>\n\tint main(void) { return 0; }"]
URLS = ["https://example.com/path?query=1&b=two#frag", "http://localhost:8080/api/v1/items/123",
        "mailto:someone@example.org", "ftp://files.example.net/pub/file.tar.gz", "www.huggingface.co/models"]
SPACES = [" ", "   ", "\t", "\n", " \t\n ", "\u00a0", "\u3000", "\u2003\u2009"]


def sentences(path, n):
    rng = random.Random(1000)
    out = []
    for i in range(int(n)):
        kind = i % 10
        if kind == 0:
            s = rng.choice(SPACES) * rng.randint(1, 4)  # whitespace only
        elif kind == 1:
            s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(300, 700)))  # over the limit
        elif kind == 2:
            s = rng.choice(CODE)
        elif kind == 3:
            s = "See " + rng.choice(URLS) + " or " + rng.choice(URLS)
        elif kind == 4:
            s = "".join(rng.choice(WORDS[22:40]) for _ in range(rng.randint(1, 12)))  # CJK, scripts, emoji, no spaces
        elif kind == 5:
            s = rng.choice(SPACES) + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))) + rng.choice(SPACES)
        else:
            s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))
            if rng.random() < 0.3:
                s = s.upper()
            if rng.random() < 0.3:
                s += rng.choice([".", "?!", " :)", "...", "\n\nNew paragraph."])
        out.append(s)
    with open(path, "w", encoding="utf-8") as f:
        for s in out:
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} sentences to {path}")


def tokens(tokenizer_json, max_tokens, in_path, ours_path, report_path):
    from tokenizers import Tokenizer
    import tokenizers
    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_padding()
    tok.enable_truncation(max_length=int(max_tokens))
    texts = [json.loads(line)["text"] for line in open(in_path, encoding="utf-8")]
    ours = [json.loads(line) for line in open(ours_path, encoding="utf-8")]
    special = set(tok.get_vocab().get(t) for t in ("[CLS]", "[SEP]", "<s>", "</s>") if t in tok.get_vocab())
    equal, refused_ok, mismatches = 0, 0, []
    for i, (text, mine) in enumerate(zip(texts, ours)):
        want = tok.encode(text)
        if "refused" in mine:
            # mps-actors refuses texts without a token of their own; Python must find only special tokens
            if all(t in special for t in want.ids):
                refused_ok += 1
            else:
                mismatches.append({"index": i, "text": text[:80], "ours": mine, "python": want.ids[:40]})
        elif mine["ids"] == want.ids:
            equal += 1
        else:
            mismatches.append({"index": i, "text": text[:80], "ours": mine["ids"][:40], "python": want.ids[:40]})
    report = {"tokenizers": tokenizers.__version__, "sentences": len(texts), "answered": len(ours),
              "ids_equal": equal, "refused_and_python_finds_only_special_tokens": refused_ok,
              "mismatches": len(mismatches), "first_mismatches": mismatches[:10],
              "truncated": sum(1 for m in ours if m.get("truncated"))}
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    print(json.dumps({k: v for k, v in report.items() if k != "first_mismatches"}))
    return not mismatches and len(ours) == len(texts)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "reference":
        reference(sys.argv[2])
    elif cmd == "compare-json":
        sys.exit(0 if compare_json(*sys.argv[2:6]) else 1)
    elif cmd == "compare":
        sys.exit(0 if compare(*sys.argv[2:6]) else 1)
    elif cmd == "table":
        table(sys.argv[2:])
    elif cmd == "sentences":
        sentences(sys.argv[2], sys.argv[3])
    elif cmd == "tokens":
        sys.exit(0 if tokens(*sys.argv[2:7]) else 1)
    else:
        sys.exit(__doc__)
