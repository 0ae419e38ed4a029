//! [`OnnxBert`]: all-MiniLM-L6-v2 on ONNX Runtime (`DA_MINILM_RUNTIME=onnx`).
//!
//! Two files, both put in place by `scripts/setup` and nothing downloaded at build or run
//! time:
//! - the library, `libonnxruntime`, from the PyPI wheel `onnxruntime` in `.venv`
//!   ([`LIBRARY`]; `DA_ONNXRUNTIME_LIB` names another), opened when the model loads;
//! - the graph, [`GRAPH_FILE`] in the model's directory, which
//!   `services/embedding/onnx/export_minilm.py` writes from the safetensors. It is made of
//!   ONNX Runtime's fused BERT operators (one QKV matrix product and a masked softmax per
//!   layer, residual + LayerNorm in one pass) and ends in the mean pooling and
//!   normalisation, so a run returns the sentence vectors themselves.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use super::{ModelError, TokenBatch, WheelLibrary};

/// The graph's file name in the model directory. The version changes whenever the exporter
/// writes a different graph, so an old file is never read as a new one.
pub const GRAPH_FILE: &str = "all-MiniLM-L6-v2.fused-v1.onnx";

/// [`GRAPH_FILE`] in `dir`, or why it is not there.
pub fn graph_file(dir: &Path) -> Result<PathBuf, ModelError> {
    let graph = dir.join(GRAPH_FILE);
    if !graph.is_file() {
        return Err(ModelError::Read {
            path: graph,
            reason: "no such file: run ./scripts/setup, which writes it from model.safetensors \
                     (or set DA_MINILM_RUNTIME=candle)"
                .into(),
        });
    }
    Ok(graph)
}

/// ONNX Runtime's `session.dynamic_block_base`: the best of 2, 4 and 8 measured here.
const DYNAMIC_BLOCK_BASE: u32 = 8;

/// The network, loaded.
pub struct OnnxBert {
    /// `Session::run` takes `&mut`; one batch runs at a time anyway (it uses every core).
    session: Mutex<Session>,
}

impl OnnxBert {
    /// Opens ONNX Runtime from `library` and loads [`GRAPH_FILE`] from `dir`.
    pub fn load(dir: &Path, library: &Path) -> Result<Self, ModelError> {
        let graph = graph_file(dir)?;
        let environment = environment(library)?;
        let read_error = |reason: String| ModelError::Read {
            path: graph.clone(),
            reason,
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let session = Session::builder(environment)
            .and_then(|builder| Ok(builder.with_intra_threads(threads)?))
            // Hands the threads work in shrinking blocks rather than one even share each:
            // with two cores and many small matrix products per text, the faster thread
            // no longer waits for the slower (measured: 5-10% more texts/s at batch 1).
            .and_then(|builder| Ok(builder.with_dynamic_block_base(DYNAMIC_BLOCK_BASE)?))
            .and_then(|mut builder| builder.commit_from_file(&graph))
            .map_err(|err| read_error(err.to_string()))?;
        Ok(Self {
            session: Mutex::new(session),
        })
    }

    /// Unit-length mean-pooled vectors, one per row of `batch`.
    pub fn sentence_vectors(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, ModelError> {
        let run = |err: ort::Error| ModelError::Run(err.to_string());
        let shape = [batch.rows, batch.columns];
        let tensor = |values: &[u32]| {
            Tensor::from_array((
                shape,
                values.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
            ))
            .map_err(run)
        };
        let inputs = ort::inputs![
            "input_ids" => tensor(&batch.ids)?,
            "token_type_ids" => tensor(&batch.type_ids)?,
            "attention_mask" => tensor(&batch.mask)?,
        ];
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs).map_err(run)?;
        let (_, values) = outputs["sentence_embedding"]
            .try_extract_tensor::<f32>()
            .map_err(run)?;
        batch.vectors(values)
    }
}

/// The process's one ONNX Runtime environment: the library can be opened once per process,
/// so every model shares the first one opened.
fn environment(library: &Path) -> Result<&'static Environment, ModelError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(library)
                .map_err(|err| err.to_string())?
                .with_name("all-MiniLM-L6-v2")
                .build()
                .map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(|reason| ModelError::Read {
            path: library.to_path_buf(),
            reason: reason.clone(),
        })
}

/// `libonnxruntime`, as the `onnxruntime` wheel installs it (`DA_ONNXRUNTIME_LIB` names another).
pub const LIBRARY: WheelLibrary = WheelLibrary {
    dir: "onnxruntime/capi",
    stem: "libonnxruntime",
    missing: "ONNX Runtime not found: run ./scripts/setup (installs the PyPI wheel onnxruntime into .venv), set DA_ONNXRUNTIME_LIB, or set DA_MINILM_RUNTIME=candle",
};
