"""PyTorch on the GPU, the peer of mps-actors' cuda backend (docs/cuda.md): Hugging Face BertModel on the
same generated folder, sequence 128, in fp32 (TF32 off) and fp16, measured as sequences/s
(a) with T threads each sending batch-1 requests on its own CUDA stream, and (b) batched on one stream.
Usage: gpu_peers.py MODEL_DIR SECONDS REPORT.json"""
import json
import sys
import threading
import time

import torch
from transformers import BertModel

SEQ = 128


def main(model_dir, seconds, report_path):
    seconds = float(seconds)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for dtype_name, dtype in [("fp32", torch.float32), ("fp16", torch.float16)]:
        model = BertModel.from_pretrained(model_dir, torch_dtype=dtype, attn_implementation="eager").cuda().eval()
        vocab = model.config.vocab_size

        def inputs(batch):
            ids = torch.randint(0, vocab, (batch, SEQ), device="cuda")
            return ids, torch.ones_like(ids)

        with torch.inference_mode():
            for batch in (16, 64, 128):
                ids, mask = inputs(batch)
                for _ in range(3):
                    model(input_ids=ids, attention_mask=mask)
                torch.cuda.synchronize()
                n, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    model(input_ids=ids, attention_mask=mask)
                    n += 1
                torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
                rows.append({"dtype": dtype_name, "mode": "batched", "batch": batch,
                             "sequences_per_s": n * batch / elapsed, "ms_per_batch": 1000 * elapsed / n})
                print(rows[-1], flush=True)
            for threads in (16, 64):
                counts = [0] * threads
                stop = time.perf_counter() + seconds

                def client(i):
                    stream = torch.cuda.Stream()
                    ids, mask = inputs(1)
                    with torch.inference_mode(), torch.cuda.stream(stream):
                        while time.perf_counter() < stop:
                            model(input_ids=ids, attention_mask=mask)
                            stream.synchronize()
                            counts[i] += 1

                pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
                start = time.perf_counter()
                for t in pool:
                    t.start()
                for t in pool:
                    t.join()
                elapsed = time.perf_counter() - start
                rows.append({"dtype": dtype_name, "mode": "thread-per-client", "threads": threads,
                             "sequences_per_s": sum(counts) / elapsed})
                print(rows[-1], flush=True)
        del model
        torch.cuda.empty_cache()
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0),
              "seq": SEQ, "rows": rows}
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:4])
