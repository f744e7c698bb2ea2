#!/usr/bin/env python3
"""Peers on the device machine: the same BERT folder, fp32, sequence 128, through PyTorch (CPU and CUDA)
and ONNX Runtime (CPU), measured as sequences/s at batch 1 and at batch 16.

  peers.py MODEL_DIR THREADS SECONDS REPORT.json
"""
import json
import os
import sys
import time

import torch


def measure(fn, batch, seconds):
    fn()  # warm-up
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    elapsed = time.perf_counter() - start
    return {"batch": batch, "sequences_per_s": n * batch / elapsed, "ms_per_batch": 1000 * elapsed / n}


def main(model_dir, threads, seconds, report_path):
    from transformers import BertModel
    threads, seconds = int(threads), float(seconds)
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    vocab = model.config.vocab_size
    seq = 128
    results = {"threads": threads, "torch": torch.__version__, "seq": seq, "peers": {}}

    def inputs(batch, device):
        g = torch.Generator().manual_seed(batch)
        ids = torch.randint(0, vocab, (batch, seq), generator=g)
        return ids.to(device), torch.ones_like(ids).to(device)

    for name, device in [("pytorch-cpu", "cpu"), ("pytorch-cuda", "cuda")]:
        if device == "cuda" and not torch.cuda.is_available():
            continue
        m = model.to(device)
        rows = []
        for batch in (1, 16):
            ids, mask = inputs(batch, device)

            def run():
                with torch.inference_mode():
                    m(input_ids=ids, attention_mask=mask)
                if device == "cuda":
                    torch.cuda.synchronize()
            rows.append(measure(run, batch, seconds))
        results["peers"][name] = rows
        print(name, rows, flush=True)
    model = model.to("cpu")

    import onnxruntime as ort
    onnx_path = "/tmp/peer-bert.onnx"
    ids, mask = inputs(1, "cpu")
    try:
        torch.onnx.export(model, (ids, mask), onnx_path, input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
                          opset_version=17, dynamo=False)
    except TypeError:
        torch.onnx.export(model, (ids, mask), onnx_path, input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
                          opset_version=17)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    rows = []
    for batch in (1, 16):
        ids, mask = inputs(batch, "cpu")
        feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        rows.append(measure(lambda: sess.run(None, feed), batch, seconds))
    results["peers"]["onnxruntime-cpu " + ort.__version__] = rows
    print("onnxruntime-cpu", rows, flush=True)
    with open(report_path, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:5])
