//! A small segmentation network in ONNX with hand-set weights, for tests: it takes red for
//! foreground. No trained segmentation model can ship (see the module above), and a network
//! whose answer is known lets a test check the whole path (normalisation, channel order,
//! layout, the mask back at the image's size), not only that something ran.
//!
//! Its layers are those IS-Net and U²-Net exports are made of: a 1×1 convolution giving
//! `GAIN · (r − (g + b) / 2) − BIAS` of the normalised pixel (IS-Net normalisation), a
//! ceil-mode 2×2 max pooling, a bilinear 2× `Resize` back to the input size and a sigmoid.
//! Pure red comes out near 1, grey and blue near 0. A second output, the pooled map, stands
//! for IS-Net's side outputs, which the engine ignores.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto::Dimension,
    tensor_shape_proto::dimension::Value as DimValue, type_proto,
};

/// The weight of the red excess in the logit.
const GAIN: f32 = 20.0;
/// The logit's offset: grey (no excess) gives sigmoid(−5) ≈ 0.007.
const BIAS: f32 = 5.0;

/// Writes the network to `path`, declaring a `size`×`size` input, or no input size at all
/// (symbolic height and width) with `None`. `size` must be even.
pub fn write_red_foreground_model(path: &Path, size: Option<u32>) -> std::io::Result<()> {
    std::fs::write(path, red_foreground_model(size).encode_to_vec())
}

/// The network's model, to be written or altered by a test.
pub(crate) fn red_foreground_model(size: Option<u32>) -> ModelProto {
    let side = |name: &str| match size {
        Some(size) => DimValue::DimValue(i64::from(size)),
        None => DimValue::DimParam(name.to_owned()),
    };
    let dims = |dims: [DimValue; 4]| {
        Some(TensorShapeProto {
            dim: dims
                .into_iter()
                .map(|value| Dimension {
                    value: Some(value),
                    ..Default::default()
                })
                .collect(),
        })
    };
    let float_tensor = |name: &str, shape: Option<TensorShapeProto>| ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let input = float_tensor(
        "input",
        dims([
            DimValue::DimValue(1),
            DimValue::DimValue(3),
            side("height"),
            side("width"),
        ]),
    );
    let graph = GraphProto {
        name: "red-foreground".into(),
        node: vec![
            node(
                "Conv",
                &["input", "weight", "bias"],
                "logit",
                vec![ints("kernel_shape", &[1, 1])],
            ),
            node(
                "MaxPool",
                &["logit"],
                "pooled",
                vec![
                    ints("kernel_shape", &[2, 2]),
                    ints("strides", &[2, 2]),
                    int("ceil_mode", 1),
                ],
            ),
            node(
                "Resize",
                &["pooled", "", "scales"],
                "enlarged",
                vec![
                    string("mode", "linear"),
                    string("coordinate_transformation_mode", "half_pixel"),
                ],
            ),
            node("Sigmoid", &["enlarged"], "mask", vec![]),
        ],
        initializer: vec![
            floats("weight", &[1, 3, 1, 1], &[GAIN, -GAIN / 2.0, -GAIN / 2.0]),
            floats("bias", &[1], &[-BIAS]),
            floats("scales", &[4], &[1.0, 1.0, 2.0, 2.0]),
        ],
        input: vec![input],
        output: vec![
            float_tensor(
                "mask",
                dims([
                    DimValue::DimValue(1),
                    DimValue::DimValue(1),
                    side("height"),
                    side("width"),
                ]),
            ),
            float_tensor("pooled", None),
        ],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "aimesh tests".into(),
        graph: Some(graph),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|&name| name.to_owned()).collect(),
        output: vec![output.to_owned()],
        attribute,
        ..Default::default()
    }
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}
