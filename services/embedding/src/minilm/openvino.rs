//! [`OpenVinoBert`]: all-MiniLM-L6-v2 on OpenVINO, the default runtime.
//!
//! It runs the very graph ONNX Runtime runs ([`GRAPH_FILE`](super::onnx::GRAPH_FILE),
//! written by `scripts/setup`): OpenVINO's ONNX reader knows ONNX Runtime's fused BERT
//! operators. What it adds is the CPU's matrix units: on a CPU with AMX or AVX-512 BF16
//! (this project's machines), OpenVINO runs the matrix products in bfloat16 with float32
//! sums by default, and its vectors stay within a cosine of 0.9999 of sentence-transformers'
//! while it embeds far more texts per second than ONNX Runtime in float32 (README,
//! "Embedding and search"). On a CPU without them it runs float32.
//!
//! The library, `libopenvino_c`, comes from the PyPI wheel `openvino` in `.venv`
//! ([`LIBRARY`]; `DA_OPENVINO_LIB` names another), opened when the model loads,
//! together with the CPU plugin and ONNX reader beside it. Nothing downloads at build or
//! run time.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use openvino::{CompiledModel, Core, DeviceType, ElementType, InferRequest, RwPropertyKey};
use openvino::{Shape, Tensor};

use super::onnx::graph_file;
use super::{ModelError, TokenBatch, WheelLibrary};

/// The network, compiled for this CPU.
pub struct OpenVinoBert {
    /// One request runs at a time (it uses every core); the compiled model and its core
    /// live as long as the request that runs them.
    loaded: Mutex<Loaded>,
}

/// What a run needs, kept together.
struct Loaded {
    request: InferRequest,
    _compiled: CompiledModel,
    _core: Core,
}

impl OpenVinoBert {
    /// Opens OpenVINO from `library` and compiles [`GRAPH_FILE`](super::onnx::GRAPH_FILE) from `dir` for the CPU.
    pub fn load(dir: &Path, library: &Path) -> Result<Self, ModelError> {
        let graph = graph_file(dir)?;
        let open_error = |reason: String| ModelError::Read {
            path: library.to_path_buf(),
            reason,
        };
        // The library is opened once per process: a later model shares the first one opened
        // (as ONNX Runtime's environment is shared).
        openvino_sys::library::load_from(library.to_path_buf()).map_err(open_error)?;
        let mut core = Core::new().map_err(|err| open_error(err.to_string()))?;
        let read_error = |err: openvino::InferenceError| ModelError::Read {
            path: graph.clone(),
            reason: err.to_string(),
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let cpu = DeviceType::CPU;
        core.set_properties(
            &cpu,
            [
                // One text at a time should be fast, not many at once: every core on one
                // request (the service runs one batch at a time anyway).
                (RwPropertyKey::HintPerformanceMode, "LATENCY"),
                (
                    RwPropertyKey::InferenceNumThreads,
                    threads.to_string().as_str(),
                ),
            ],
        )
        .map_err(read_error)?;
        let graph_path = graph.to_string_lossy();
        let model = core
            .read_model_from_file(&graph_path, "")
            .map_err(read_error)?;
        let mut compiled = core.compile_model(&model, cpu).map_err(read_error)?;
        let request = compiled.create_infer_request().map_err(read_error)?;
        Ok(Self {
            loaded: Mutex::new(Loaded {
                request,
                _compiled: compiled,
                _core: core,
            }),
        })
    }

    /// Unit-length mean-pooled vectors, one per row of `batch`.
    pub fn sentence_vectors(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, ModelError> {
        let run = |err: openvino::InferenceError| ModelError::Run(err.to_string());
        let shape = Shape::new(&[batch.rows as i64, batch.columns as i64]).map_err(run)?;
        let tensor = |values: &[u32]| -> Result<Tensor, ModelError> {
            let mut tensor = Tensor::new(ElementType::I64, &shape).map_err(run)?;
            let data = tensor.get_data_mut::<i64>().map_err(run)?;
            for (slot, &value) in data.iter_mut().zip(values) {
                *slot = i64::from(value);
            }
            Ok(tensor)
        };
        let inputs = [
            ("input_ids", tensor(&batch.ids)?),
            ("token_type_ids", tensor(&batch.type_ids)?),
            ("attention_mask", tensor(&batch.mask)?),
        ];
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, tensor) in &inputs {
            loaded.request.set_tensor(name, tensor).map_err(run)?;
        }
        loaded.request.infer().map_err(run)?;
        let output = loaded
            .request
            .get_tensor("sentence_embedding")
            .map_err(run)?;
        let values = output.get_data::<f32>().map_err(run)?;
        batch.vectors(values)
    }
}

/// `libopenvino_c`, as the `openvino` wheel installs it (`DA_OPENVINO_LIB` names another).
pub const LIBRARY: WheelLibrary = WheelLibrary {
    dir: "openvino/libs",
    stem: "libopenvino_c",
    missing: "OpenVINO not found: run ./scripts/setup (installs the PyPI wheel openvino into .venv), set DA_OPENVINO_LIB, or set DA_MINILM_RUNTIME=onnx or candle",
};
