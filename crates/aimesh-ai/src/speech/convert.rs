//! Conversion of Whisper weights from CTranslate2's `model.bin` into safetensors with the
//! names candle's Whisper model loads, plus the candle model config derived from them.
//!
//! The CTranslate2 file (little-endian) holds: `u32` format version; the spec name (`u16`
//! length + bytes); `u32` spec revision; `u32` variable count; per variable its name (`u16`
//! length + NUL-padded bytes), `u8` rank, `rank` × `u32` dimensions, `u8` dtype, `u32` byte
//! count and the raw data; then `u32` alias count and per alias two names. Attention
//! projections are fused (self-attention q|k|v, cross-attention k|v) and are split here;
//! keys have no bias. Weights are stored as f32, which candle runs fastest on CPU.
//!
//! Derived files, beside the pinned ones in the model's directory:
//!
//! ```text
//! whisper.safetensors          the converted weights
//! whisper-config.json          candle's Whisper config (+ begin_suppress_tokens)
//! *.sha256                     their digests, checked by every load
//! ```

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper::Config;

use crate::models::{self, ModelError};

/// Catalog id of the English Whisper model (the default).
pub const MODEL_ID: &str = "whisper-tiny.en";
/// Catalog id of the multilingual Whisper model (language detection, other languages).
pub const MULTILINGUAL_MODEL_ID: &str = "whisper-base";
/// The Whisper models of the catalog, default first.
pub const MODEL_IDS: &[&str] = &[MODEL_ID, MULTILINGUAL_MODEL_ID];
/// The converted weights, in the model's directory.
pub const WEIGHTS_FILE: &str = "whisper.safetensors";
/// The derived candle config, in the model's directory.
pub const CONFIG_FILE: &str = "whisper-config.json";

/// CTranslate2's dtype codes.
const DTYPE_F32: u8 = 0;
const DTYPE_F16: u8 = 4;
const DTYPE_BF16: u8 = 5;

/// One tensor read from `model.bin`.
struct Variable {
    dims: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

/// A cursor over the bytes of `model.bin` that reports truncation as [`ModelError::Invalid`].
struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(ModelError::invalid(
                self.path,
                format!("truncated at byte {} (wanted {n} more)", self.at),
            ));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ModelError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self) -> Result<String, ModelError> {
        let len = self.u16()? as usize;
        let raw = self.take(len)?;
        let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8(raw.to_vec())
            .map_err(|_| ModelError::invalid(self.path, "a variable name is not UTF-8"))
    }
}

/// Parses `model.bin` into its variables (aliases resolved to copies of their targets).
fn read_ct2(path: &Path) -> Result<HashMap<String, Variable>, ModelError> {
    let bytes = fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut r = Reader {
        path,
        bytes: &bytes,
        at: 0,
    };
    let version = r.u32()?;
    if version < 5 {
        return Err(ModelError::invalid(
            path,
            format!("CTranslate2 format version {version} is not supported"),
        ));
    }
    let spec = r.name()?;
    if spec != "WhisperSpec" {
        return Err(ModelError::invalid(
            path,
            format!("holds a {spec:?}, not a WhisperSpec"),
        ));
    }
    let _revision = r.u32()?;
    let count = r.u32()?;
    let mut variables = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let name = r.name()?;
        let rank = r.u8()?;
        let dims = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = r.u8()?;
        let len = r.u32()? as usize;
        let data = r.take(len)?.to_vec();
        variables.insert(name, Variable { dims, dtype, data });
    }
    if r.at < bytes.len() {
        let aliases = r.u32()?;
        for _ in 0..aliases {
            let alias = r.name()?;
            let target = r.name()?;
            if let Some(variable) = variables.get(&target) {
                let copy = Variable {
                    dims: variable.dims.clone(),
                    dtype: variable.dtype,
                    data: variable.data.clone(),
                };
                variables.insert(alias, copy);
            }
        }
    }
    Ok(variables)
}

/// Converts one CTranslate2 variable into an f32 tensor.
fn to_tensor(path: &Path, name: &str, variable: &Variable) -> Result<Tensor, ModelError> {
    let dtype = match variable.dtype {
        DTYPE_F32 => DType::F32,
        DTYPE_F16 => DType::F16,
        DTYPE_BF16 => DType::BF16,
        other => {
            return Err(ModelError::invalid(
                path,
                format!("{name}: dtype {other} is not a float type"),
            ));
        }
    };
    let elements: usize = variable.dims.iter().product();
    if elements * dtype.size_in_bytes() != variable.data.len() {
        return Err(ModelError::invalid(
            path,
            format!(
                "{name}: {} bytes for shape {:?}",
                variable.data.len(),
                variable.dims
            ),
        ));
    }
    Tensor::from_raw_buffer(&variable.data, dtype, &variable.dims, &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(|e| ModelError::invalid(path, format!("{name}: {e}")))
}

/// Builds the candle-named tensors from the CTranslate2 variables.
struct Converter<'a> {
    path: &'a Path,
    variables: &'a HashMap<String, Variable>,
    out: HashMap<String, Tensor>,
}

impl Converter<'_> {
    fn get(&self, name: &str) -> Result<Tensor, ModelError> {
        let variable = self
            .variables
            .get(name)
            .ok_or_else(|| ModelError::invalid(self.path, format!("no variable {name}")))?;
        to_tensor(self.path, name, variable)
    }

    fn copy(&mut self, from: &str, to: impl Into<String>) -> Result<(), ModelError> {
        let tensor = self.get(from)?;
        self.out.insert(to.into(), tensor);
        Ok(())
    }

    /// Splits a tensor fused along its first dimension into `parts` equal pieces.
    fn split(&self, name: &str, parts: usize) -> Result<Vec<Tensor>, ModelError> {
        let tensor = self.get(name)?;
        let rows = tensor.dims().first().copied().unwrap_or(0);
        if rows == 0 || rows % parts != 0 {
            return Err(ModelError::invalid(
                self.path,
                format!("{name}: {rows} rows do not split into {parts}"),
            ));
        }
        let size = rows / parts;
        (0..parts)
            .map(|i| {
                tensor
                    .narrow(0, i * size, size)
                    .and_then(|t| t.contiguous())
                    .map_err(|e| ModelError::invalid(self.path, format!("{name}: {e}")))
            })
            .collect()
    }

    fn layer_norm(&mut self, from: &str, to: &str) -> Result<(), ModelError> {
        self.copy(&format!("{from}/gamma"), format!("{to}.weight"))?;
        self.copy(&format!("{from}/beta"), format!("{to}.bias"))
    }

    fn linear(&mut self, from: &str, to: &str) -> Result<(), ModelError> {
        self.copy(&format!("{from}/weight"), format!("{to}.weight"))?;
        self.copy(&format!("{from}/bias"), format!("{to}.bias"))
    }

    /// Splits a fused projection into `targets` (q/k/v or k/v), dropping the keys' bias.
    fn fused(&mut self, from: &str, to: &str, targets: &[&str]) -> Result<(), ModelError> {
        let weights = self.split(&format!("{from}/weight"), targets.len())?;
        let biases = self.split(&format!("{from}/bias"), targets.len())?;
        for ((target, weight), bias) in targets.iter().zip(weights).zip(biases) {
            self.out.insert(format!("{to}.{target}.weight"), weight);
            if *target != "k_proj" {
                self.out.insert(format!("{to}.{target}.bias"), bias);
            }
        }
        Ok(())
    }

    /// The parts encoder and decoder layers share: self-attention (fused q|k|v) and the
    /// feed-forward block, each with its layer norm.
    fn self_attention_and_ffn(&mut self, from: &str, to: &str) -> Result<(), ModelError> {
        self.layer_norm(
            &format!("{from}/self_attention/layer_norm"),
            &format!("{to}.self_attn_layer_norm"),
        )?;
        self.fused(
            &format!("{from}/self_attention/linear_0"),
            &format!("{to}.self_attn"),
            &["q_proj", "k_proj", "v_proj"],
        )?;
        self.linear(
            &format!("{from}/self_attention/linear_1"),
            &format!("{to}.self_attn.out_proj"),
        )?;
        self.layer_norm(
            &format!("{from}/ffn/layer_norm"),
            &format!("{to}.final_layer_norm"),
        )?;
        self.linear(&format!("{from}/ffn/linear_0"), &format!("{to}.fc1"))?;
        self.linear(&format!("{from}/ffn/linear_1"), &format!("{to}.fc2"))
    }

    fn layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.variables
                    .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }
}

/// Converts CTranslate2 Whisper weights (`model_bin`) into a safetensors file at `out` with
/// candle's names, as f32, and returns the model shape as a candle config (with no suppressed
/// tokens: those come from the CTranslate2 `config.json`, see [`prepare`]). Does not record
/// the digest.
pub fn convert_ct2(model_bin: &Path, out: &Path) -> Result<Config, ModelError> {
    let variables = read_ct2(model_bin)?;
    let mut c = Converter {
        path: model_bin,
        variables: &variables,
        out: HashMap::new(),
    };
    let encoder_layers = c.layers("encoder");
    let decoder_layers = c.layers("decoder");
    if encoder_layers == 0 || decoder_layers == 0 {
        return Err(ModelError::invalid(
            model_bin,
            "no encoder or decoder layers",
        ));
    }

    c.linear("encoder/conv1", "model.encoder.conv1")?;
    c.linear("encoder/conv2", "model.encoder.conv2")?;
    c.copy(
        "encoder/position_encodings/encodings",
        "model.encoder.embed_positions.weight",
    )?;
    c.layer_norm("encoder/layer_norm", "model.encoder.layer_norm")?;
    for i in 0..encoder_layers {
        let from = format!("encoder/layer_{i}");
        let to = format!("model.encoder.layers.{i}");
        c.self_attention_and_ffn(&from, &to)?;
    }

    c.copy(
        "decoder/embeddings/weight",
        "model.decoder.embed_tokens.weight",
    )?;
    c.copy(
        "decoder/position_encodings/encodings",
        "model.decoder.embed_positions.weight",
    )?;
    c.layer_norm("decoder/layer_norm", "model.decoder.layer_norm")?;
    for i in 0..decoder_layers {
        let from = format!("decoder/layer_{i}");
        let to = format!("model.decoder.layers.{i}");
        c.self_attention_and_ffn(&from, &to)?;
        c.layer_norm(
            &format!("{from}/attention/layer_norm"),
            &format!("{to}.encoder_attn_layer_norm"),
        )?;
        c.linear(
            &format!("{from}/attention/linear_0"),
            &format!("{to}.encoder_attn.q_proj"),
        )?;
        c.fused(
            &format!("{from}/attention/linear_1"),
            &format!("{to}.encoder_attn"),
            &["k_proj", "v_proj"],
        )?;
        c.linear(
            &format!("{from}/attention/linear_2"),
            &format!("{to}.encoder_attn.out_proj"),
        )?;
    }

    let dims = |name: &str| -> Result<Vec<usize>, ModelError> {
        variables
            .get(name)
            .map(|v| v.dims.clone())
            .ok_or_else(|| ModelError::invalid(model_bin, format!("no variable {name}")))
    };
    let conv1 = dims("encoder/conv1/weight")?;
    let embeddings = dims("decoder/embeddings/weight")?;
    let (Some(&num_mel_bins), [vocab_size, d_model]) = (conv1.get(1), embeddings.as_slice()) else {
        return Err(ModelError::invalid(
            model_bin,
            "unexpected embedding shapes",
        ));
    };
    let rows = |name: &str| -> Result<usize, ModelError> {
        dims(name)?
            .first()
            .copied()
            .ok_or_else(|| ModelError::invalid(model_bin, format!("{name} is a scalar")))
    };
    let heads = |name: &str| {
        variables
            .get(name)
            .filter(|v| v.dtype == 2 && v.data.len() == 2)
            .map(|v| u16::from_le_bytes([v.data[0], v.data[1]]) as usize)
            .unwrap_or(d_model / 64)
    };
    let config = Config {
        num_mel_bins,
        max_source_positions: rows("encoder/position_encodings/encodings")?,
        d_model: *d_model,
        encoder_attention_heads: heads("encoder/num_heads"),
        encoder_layers,
        vocab_size: *vocab_size,
        max_target_positions: rows("decoder/position_encodings/encodings")?,
        decoder_attention_heads: heads("decoder/num_heads"),
        decoder_layers,
        suppress_tokens: Vec::new(),
    };

    let tmp = temporary(out);
    candle_core::safetensors::save(&c.out, &tmp)
        .map_err(|e| ModelError::invalid(&tmp, format!("cannot write: {e}")))?;
    fs::rename(&tmp, out).map_err(|source| ModelError::Io {
        path: out.to_owned(),
        source,
    })?;
    Ok(config)
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The suppression lists of the CTranslate2 `config.json`.
fn suppressed(config_json: &Path) -> Result<(Vec<u32>, Vec<u32>), ModelError> {
    let text = fs::read_to_string(config_json).map_err(|source| ModelError::Io {
        path: config_json.to_owned(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::invalid(config_json, e))?;
    let ids = |key: &str| -> Vec<u32> {
        value
            .get(key)
            .and_then(|v| v.as_array())
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_u64().and_then(|id| u32::try_from(id).ok()))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok((ids("suppress_ids"), ids("suppress_ids_begin")))
}

/// Makes every Whisper model of the catalog ready to load (see [`prepare_model`]).
pub fn prepare(models_dir: &Path) -> Result<(), ModelError> {
    for id in MODEL_IDS {
        prepare_model(models_dir, id)?;
    }
    Ok(())
}

/// Makes the Whisper model `id` in `models_dir` ready to load: verifies the pinned
/// CTranslate2 files, and converts them when a derived file is missing or fails its recorded
/// digest. Idempotent: does nothing more than verification when the derived files are
/// intact. Returns whether it converted.
pub fn prepare_model(models_dir: &Path, id: &str) -> Result<bool, ModelError> {
    let spec = models::spec(id)
        .ok_or_else(|| ModelError::invalid(models_dir, format!("{id} not in catalog")))?;
    let dir = spec.verify(models_dir)?;
    let weights = dir.join(WEIGHTS_FILE);
    let config = dir.join(CONFIG_FILE);
    let intact = models::verify_derived(&weights).and_then(|()| models::verify_derived(&config));
    match intact {
        Ok(()) => return Ok(false),
        Err(error) => tracing::info!(%error, model = id, "converting whisper weights"),
    }
    let mut shape = convert_ct2(&dir.join("model.bin"), &weights)?;
    models::record_digest(&weights)?;
    let (suppress, begin) = suppressed(&dir.join("config.json"))?;
    shape.suppress_tokens = suppress;
    let json = serde_json::json!({
        "num_mel_bins": shape.num_mel_bins,
        "max_source_positions": shape.max_source_positions,
        "d_model": shape.d_model,
        "encoder_attention_heads": shape.encoder_attention_heads,
        "encoder_layers": shape.encoder_layers,
        "vocab_size": shape.vocab_size,
        "max_target_positions": shape.max_target_positions,
        "decoder_attention_heads": shape.decoder_attention_heads,
        "decoder_layers": shape.decoder_layers,
        "suppress_tokens": shape.suppress_tokens,
        "begin_suppress_tokens": begin,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| ModelError::invalid(&config, e))?;
    fs::write(&config, text).map_err(|source| ModelError::Io {
        path: config.clone(),
        source,
    })?;
    models::record_digest(&config)?;
    tracing::info!(dir = %dir.display(), "whisper weights converted");
    Ok(true)
}
