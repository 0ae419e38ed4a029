//! [`CandleBert`]: all-MiniLM-L6-v2 on candle's BERT, straight from the safetensors.
//!
//! The runtime that needs nothing beside the weights (`DA_MINILM_RUNTIME=candle`); slower
//! than [`super::onnx`] on CPU, whose graph fuses what candle runs op by op.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};

use super::{ModelError, TokenBatch};

/// The network, loaded.
pub struct CandleBert {
    model: BertModel,
    device: Device,
}

impl CandleBert {
    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let read_error = |path: &Path, reason: String| ModelError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let config_path = dir.join("config.json");
        let config: Config = std::fs::read_to_string(&config_path)
            .map_err(|err| err.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|err| err.to_string()))
            .map_err(|reason| read_error(&config_path, reason))?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the weights file is memory-mapped read-only; it belongs to the project's
        // venv and is not modified while the process runs.
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DTYPE, &device) }
            .map_err(|err| read_error(&weights, err.to_string()))?;
        let model =
            BertModel::load(vb, &config).map_err(|err| read_error(&weights, err.to_string()))?;
        Ok(Self { model, device })
    }

    /// Unit-length mean-pooled vectors, one per row of `batch`.
    pub fn sentence_vectors(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, ModelError> {
        let run = |err: candle_core::Error| ModelError::Run(err.to_string());
        let tensor = |values: &[u32]| {
            Tensor::from_slice(values, (batch.rows, batch.columns), &self.device).map_err(run)
        };
        let (ids, type_ids, mask) = (
            tensor(&batch.ids)?,
            tensor(&batch.type_ids)?,
            tensor(&batch.mask)?,
        );
        let hidden = self
            .model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(run)?;
        let mask = mask
            .to_dtype(DType::F32)
            .map_err(run)?
            .unsqueeze(2)
            .map_err(run)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .map_err(run)?
            .sum(1)
            .map_err(run)?;
        let counts = mask
            .sum(1)
            .map_err(run)?
            .clamp(1e-9, f32::MAX)
            .map_err(run)?;
        let mean = summed.broadcast_div(&counts).map_err(run)?;
        let norms = mean
            .sqr()
            .map_err(run)?
            .sum_keepdim(1)
            .map_err(run)?
            .sqrt()
            .map_err(run)?
            .clamp(1e-12, f32::MAX)
            .map_err(run)?;
        mean.broadcast_div(&norms)
            .map_err(run)?
            .to_vec2::<f32>()
            .map_err(run)
    }
}
