//! A TensorFlow.js "layers" model (Keras functional topology in `model.json`, float32 weights
//! in binary shards) run on candle, for the small set of layers convolutional image networks
//! such as idealo's RDN use: `InputLayer`, `Conv2D` (stride 1, dilation 1, `same` or `valid`
//! padding, linear or ReLU activation), `Activation` (linear, ReLU), `Concatenate` and `Add`
//! on the channel axis, `UpSampling2D` (nearest), and the two custom layers of idealo's RRDN
//! as UpscalerJS registers them: `MultiplyBeta` (the residual scaled by its `beta`) and
//! `PixelShuffle<n>x` (TF's `depth_to_space` with block `n`). Anything else is refused when
//! loading, naming the layer, so an unsupported model never runs half-understood.
//!
//! Keras works channels-last; the graph runs channels-first (NCHW) as candle's convolutions
//! want, converting kernels from `[kh, kw, in, out]` to `[out, in, kh, kw]` once at load.

use std::{collections::HashMap, fs, path::Path};

use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::models::ModelError;

#[derive(Debug, Deserialize)]
struct ModelJson {
    format: Option<String>,
    #[serde(rename = "modelTopology")]
    topology: Topology,
    #[serde(rename = "weightsManifest")]
    manifest: Vec<WeightGroup>,
}

#[derive(Debug, Deserialize)]
struct Topology {
    model_config: ModelConfig,
}

#[derive(Debug, Deserialize)]
struct ModelConfig {
    class_name: String,
    config: GraphConfig,
}

#[derive(Debug, Deserialize)]
struct GraphConfig {
    layers: Vec<LayerJson>,
    input_layers: Vec<(String, usize, usize)>,
    output_layers: Vec<(String, usize, usize)>,
}

#[derive(Debug, Deserialize)]
struct LayerJson {
    class_name: String,
    name: String,
    config: serde_json::Value,
    #[serde(default)]
    inbound_nodes: Vec<Vec<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct WeightGroup {
    paths: Vec<String>,
    weights: Vec<WeightEntry>,
}

#[derive(Debug, Deserialize)]
struct WeightEntry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quantization>,
}

/// How TF.js stored a float32 weight in fewer bits: affine integers, `min + scale × q`.
#[derive(Debug, serde::Deserialize)]
struct Quantization {
    dtype: String,
    #[serde(default)]
    min: f32,
    #[serde(default)]
    scale: f32,
}

/// One layer, ready to run.
#[derive(Debug)]
enum Op {
    Input,
    Conv {
        weight: Tensor,
        bias: Option<Tensor>,
        padding: usize,
        relu: bool,
    },
    Relu,
    Identity,
    Concat,
    Add,
    Upsample(usize),
    /// Multiplies by a constant (`MultiplyBeta`).
    Scale(f64),
    /// `depth_to_space` with this block size (`PixelShuffle<n>x`).
    PixelShuffle(usize),
}

#[derive(Debug)]
struct Node {
    name: String,
    op: Op,
    inputs: Vec<usize>,
    /// Index of the last node reading this one's output (its value is dropped after).
    last_use: usize,
}

/// A loaded TF.js layers graph.
#[derive(Debug)]
pub(crate) struct Graph {
    nodes: Vec<Node>,
    input: usize,
    output: usize,
    /// Total scale of the `UpSampling2D` and `PixelShuffle` layers on the path to the output.
    pub(crate) scale: usize,
    /// The widest receptive-field radius, in input pixels (sum of kernel radii), bounding
    /// how far a tile's edge effects reach.
    pub(crate) radius: usize,
}

impl Graph {
    /// Loads `model.json` and its weight shards (paths relative to it).
    pub(crate) fn load(model_json: &Path, device: &Device) -> Result<Self, ModelError> {
        let invalid = |reason: String| ModelError::invalid(model_json, reason);
        let text = fs::read_to_string(model_json).map_err(|source| ModelError::Io {
            path: model_json.to_owned(),
            source,
        })?;
        let model: ModelJson =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not a TF.js model: {e}")))?;
        if model.format.as_deref().is_some_and(|f| f != "layers-model") {
            return Err(invalid(format!(
                "format {:?}, expected layers-model",
                model.format
            )));
        }
        if model.topology.model_config.class_name != "Functional"
            && model.topology.model_config.class_name != "Model"
        {
            return Err(invalid(format!(
                "model class {}, expected a functional model",
                model.topology.model_config.class_name
            )));
        }
        let weights = read_weights(model_json, &model.manifest, device)?;
        let graph = &model.topology.model_config.config;
        let (input_name, output_name) = match (&graph.input_layers[..], &graph.output_layers[..]) {
            ([input], [output]) => (input.0.clone(), output.0.clone()),
            _ => return Err(invalid("expected one input and one output".into())),
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut nodes: Vec<Node> = Vec::with_capacity(graph.layers.len());
        let mut radius = 0;
        let mut scale = 1;
        for layer in &graph.layers {
            let config = &layer.config;
            let mut inputs = Vec::new();
            for inbound in layer.inbound_nodes.iter().flatten() {
                let name = inbound
                    .get(0)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| invalid(format!("{}: malformed inbound node", layer.name)))?;
                let &from = index.get(name).ok_or_else(|| {
                    invalid(format!(
                        "{}: input {name} is not defined before it",
                        layer.name
                    ))
                })?;
                inputs.push(from);
            }
            let unsupported = |what: String| invalid(format!("layer {}: {what}", layer.name));
            let channel_axis = || {
                let axis = config.get("axis").and_then(|v| v.as_i64()).unwrap_or(-1);
                if axis == -1 || axis == 3 {
                    Ok(())
                } else {
                    Err(unsupported(format!(
                        "axis {axis}, only the channel axis is supported"
                    )))
                }
            };
            let op = match layer.class_name.as_str() {
                "InputLayer" => Op::Input,
                "Conv2D" => {
                    let pair = |key: &str| -> Vec<i64> {
                        config
                            .get(key)
                            .and_then(|v| v.as_array())
                            .map(|a| a.iter().filter_map(|x| x.as_i64()).collect())
                            .unwrap_or_default()
                    };
                    if pair("strides") != [1, 1] || pair("dilation_rate") != [1, 1] {
                        return Err(unsupported(
                            "only stride 1 and dilation 1 are supported".into(),
                        ));
                    }
                    if config.get("data_format").and_then(|v| v.as_str()) != Some("channels_last") {
                        return Err(unsupported("only channels_last is supported".into()));
                    }
                    let kernel = pair("kernel_size");
                    let (kh, kw) = match kernel[..] {
                        [kh, kw] if kh == kw && kh % 2 == 1 => (kh as usize, kw as usize),
                        _ => {
                            return Err(unsupported(format!(
                                "kernel {kernel:?}: only odd square kernels"
                            )));
                        }
                    };
                    let padding = match config.get("padding").and_then(|v| v.as_str()) {
                        Some("same") => kh / 2,
                        Some("valid") if kh == 1 => 0,
                        other => return Err(unsupported(format!("padding {other:?}"))),
                    };
                    let relu = match config.get("activation").and_then(|v| v.as_str()) {
                        Some("linear") | None => false,
                        Some("relu") => true,
                        Some(other) => return Err(unsupported(format!("activation {other}"))),
                    };
                    let kernel_name = format!("{}/kernel", layer.name);
                    let kernel = weights
                        .get(&kernel_name)
                        .ok_or_else(|| unsupported(format!("no weight {kernel_name}")))?;
                    let dims = kernel.dims();
                    if dims.len() != 4 || dims[0] != kh || dims[1] != kw {
                        return Err(unsupported(format!("kernel shape {dims:?}")));
                    }
                    let weight = kernel
                        .permute((3, 2, 0, 1))
                        .and_then(|t| t.contiguous())
                        .map_err(|e| unsupported(e.to_string()))?;
                    let use_bias = config
                        .get("use_bias")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(true);
                    let bias = if use_bias {
                        let name = format!("{}/bias", layer.name);
                        let bias = weights
                            .get(&name)
                            .ok_or_else(|| unsupported(format!("no weight {name}")))?;
                        Some(
                            bias.reshape((1, dims[3], 1, 1))
                                .map_err(|e| unsupported(e.to_string()))?,
                        )
                    } else {
                        None
                    };
                    radius += kh / 2;
                    Op::Conv {
                        weight,
                        bias,
                        padding,
                        relu,
                    }
                }
                "Activation" => match config.get("activation").and_then(|v| v.as_str()) {
                    Some("relu") => Op::Relu,
                    Some("linear") => Op::Identity,
                    other => return Err(unsupported(format!("activation {other:?}"))),
                },
                "Concatenate" => {
                    channel_axis()?;
                    Op::Concat
                }
                "Add" => Op::Add,
                "UpSampling2D" => {
                    let size: Vec<i64> = config
                        .get("size")
                        .and_then(|v| v.as_array())
                        .map(|a| a.iter().filter_map(|x| x.as_i64()).collect())
                        .unwrap_or_default();
                    let interpolation = config
                        .get("interpolation")
                        .and_then(|v| v.as_str())
                        .unwrap_or("nearest");
                    match size[..] {
                        [a, b] if a == b && a >= 1 && interpolation == "nearest" => {
                            scale *= a as usize;
                            Op::Upsample(a as usize)
                        }
                        _ => {
                            return Err(unsupported(format!(
                                "upsampling {size:?} {interpolation}"
                            )));
                        }
                    }
                }
                "MultiplyBeta" => match config.get("beta").and_then(|v| v.as_f64()) {
                    Some(beta) if beta.is_finite() => Op::Scale(beta),
                    other => return Err(unsupported(format!("beta {other:?}"))),
                },
                other if other.starts_with("PixelShuffle") => {
                    let size = config.get("scale").and_then(|v| v.as_u64());
                    match size {
                        Some(size @ 2..=8) if other == format!("PixelShuffle{size}x") => {
                            scale *= size as usize;
                            Op::PixelShuffle(size as usize)
                        }
                        _ => return Err(unsupported(format!("{other} with scale {size:?}"))),
                    }
                }
                other => return Err(unsupported(format!("layer type {other} is not supported"))),
            };
            let expected_inputs = match op {
                Op::Input => 0..=0,
                Op::Concat | Op::Add => 2..=usize::MAX,
                _ => 1..=1,
            };
            if !expected_inputs.contains(&inputs.len()) {
                return Err(unsupported(format!("{} inputs", inputs.len())));
            }
            let at = nodes.len();
            for &from in &inputs {
                nodes[from].last_use = at;
            }
            index.insert(layer.name.clone(), at);
            nodes.push(Node {
                name: layer.name.clone(),
                op,
                inputs,
                last_use: at,
            });
        }
        let input = *index
            .get(&input_name)
            .ok_or_else(|| invalid(format!("input layer {input_name} not found")))?;
        let output = *index
            .get(&output_name)
            .ok_or_else(|| invalid(format!("output layer {output_name} not found")))?;
        nodes[output].last_use = usize::MAX;
        Ok(Self {
            nodes,
            input,
            output,
            scale,
            radius,
        })
    }

    /// Runs the graph on an NCHW batch.
    pub(crate) fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let mut values: Vec<Option<Tensor>> = vec![None; self.nodes.len()];
        for (at, node) in self.nodes.iter().enumerate() {
            let arg = |i: usize| -> candle_core::Result<&Tensor> {
                values[node.inputs[i]].as_ref().ok_or_else(|| {
                    candle_core::Error::Msg(format!("{}: input computed nowhere", node.name))
                })
            };
            let value = match &node.op {
                Op::Input if at == self.input => input.clone(),
                Op::Input => candle_core::bail!("{}: a second input", node.name),
                Op::Conv {
                    weight,
                    bias,
                    padding,
                    relu,
                } => {
                    let mut x = arg(0)?.conv2d(weight, *padding, 1, 1, 1)?;
                    if let Some(bias) = bias {
                        x = x.broadcast_add(bias)?;
                    }
                    if *relu { x.relu()? } else { x }
                }
                Op::Relu => arg(0)?.relu()?,
                Op::Identity => arg(0)?.clone(),
                Op::Concat => {
                    let parts = (0..node.inputs.len())
                        .map(arg)
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    Tensor::cat(&parts, 1)?
                }
                Op::Add => {
                    let mut sum = arg(0)?.clone();
                    for i in 1..node.inputs.len() {
                        sum = (sum + arg(i)?)?;
                    }
                    sum
                }
                Op::Upsample(size) => {
                    let x = arg(0)?;
                    let (_, _, h, w) = x.dims4()?;
                    x.upsample_nearest2d(h * size, w * size)?
                }
                Op::Scale(factor) => arg(0)?.affine(*factor, 0.0)?,
                Op::PixelShuffle(size) => depth_to_space(arg(0)?, *size)?,
            };
            values[at] = Some(value);
            // Free what no later layer reads.
            for &from in &node.inputs {
                if self.nodes[from].last_use == at {
                    values[from] = None;
                }
            }
        }
        values[self.output]
            .take()
            .ok_or_else(|| candle_core::Error::Msg("the output was never computed".into()))
    }
}

/// TF's `depth_to_space` (NHWC, channel `(i * n + j) * C + c` goes to row offset `i`, column
/// offset `j`, channel `c`) on an NCHW tensor: `(B, C·n², H, W)` to `(B, C, H·n, W·n)`.
fn depth_to_space(x: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    let (batch, channels, height, width) = x.dims4()?;
    if channels % (n * n) != 0 {
        candle_core::bail!("depth_to_space: {channels} channels is not a multiple of {n}²");
    }
    let out = channels / (n * n);
    x.reshape((batch, n, n, out, height, width))?
        .permute((0, 3, 4, 1, 5, 2))?
        .reshape((batch, out, height * n, width * n))
}

/// Reads every weight of the manifest: each group's shards concatenated, its weights laid
/// end to end in manifest order, little-endian float32, or quantized by TF.js to uint8 or
/// uint16 (`min + scale × q`).
fn read_weights(
    model_json: &Path,
    manifest: &[WeightGroup],
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let dir = model_json.parent().unwrap_or(Path::new("."));
    let mut weights = HashMap::new();
    for group in manifest {
        let mut bytes = Vec::new();
        for shard in &group.paths {
            if shard.contains("..") || shard.starts_with('/') {
                return Err(ModelError::invalid(
                    model_json,
                    format!("shard path {shard}"),
                ));
            }
            let path = dir.join(shard);
            let data = fs::read(&path).map_err(|source| ModelError::Io { path, source })?;
            bytes.extend_from_slice(&data);
        }
        let mut offset = 0usize;
        for entry in &group.weights {
            let stored = entry
                .quantization
                .as_ref()
                .map_or(entry.dtype.as_str(), |q| q.dtype.as_str());
            let width = match (entry.dtype.as_str(), stored) {
                ("float32", "float32") => 4,
                ("float32", "uint16") => 2,
                ("float32", "uint8") => 1,
                _ => {
                    return Err(ModelError::invalid(
                        model_json,
                        format!(
                            "{}: {} weights stored as {stored} are not supported (float32, or \
                             float32 quantized to uint8 or uint16)",
                            entry.name, entry.dtype
                        ),
                    ));
                }
            };
            let count: usize = entry.shape.iter().product();
            let end = offset + count * width;
            let raw = bytes.get(offset..end).ok_or_else(|| {
                ModelError::invalid(model_json, format!("{}: the shards end early", entry.name))
            })?;
            let affine = |q: f32| {
                let quantization = entry.quantization.as_ref();
                quantization.map_or(q, |affine| affine.min + affine.scale * q)
            };
            let values: Vec<f32> = match width {
                4 => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                2 => raw
                    .chunks_exact(2)
                    .map(|b| affine(f32::from(u16::from_le_bytes([b[0], b[1]]))))
                    .collect(),
                _ => raw.iter().map(|&q| affine(f32::from(q))).collect(),
            };
            let tensor = Tensor::from_vec(values, entry.shape.clone(), device)
                .map_err(|e| ModelError::invalid(model_json, e))?;
            weights.insert(entry.name.clone(), tensor);
            offset = end;
        }
        if offset != bytes.len() {
            return Err(ModelError::invalid(
                model_json,
                format!(
                    "{} bytes of shards, the manifest describes {offset}",
                    bytes.len()
                ),
            ));
        }
    }
    Ok(weights)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn depth_to_space_is_tensorflows() {
        // Two output channels, block 2: TF's channel (i * 2 + j) * 2 + c lands at row offset
        // i, column offset j, channel c.
        let input: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let x = Tensor::from_vec(input, (1, 8, 1, 1), &Device::Cpu).unwrap();
        let y = depth_to_space(&x, 2).unwrap();
        assert_eq!(y.dims(), [1, 2, 2, 2]);
        let planes: Vec<Vec<Vec<f32>>> = y.squeeze(0).unwrap().to_vec3().unwrap();
        assert_eq!(planes[0], [[0.0, 2.0], [4.0, 6.0]]);
        assert_eq!(planes[1], [[1.0, 3.0], [5.0, 7.0]]);
        let odd = Tensor::zeros((1, 6, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(depth_to_space(&odd, 2).is_err());
    }
}
