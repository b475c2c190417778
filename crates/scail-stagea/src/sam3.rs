//! SAM3 text-prompted image segmentation from its three ONNX graphs (the Hugging Face
//! `Sam3Model` split): vision encoder, text encoder, mask decoder. Detection runs on every
//! frame; identities come from [`crate::track`].

use std::path::{Path, PathBuf};

use crate::frame::{dims, BBox, Mask, RgbImage};
use crate::runtime::{ElemType, HostTensor, OnnxModel, RuntimeConfig, RuntimeError, TensorData};
use crate::tokenizer::ClipTokenizer;
use crate::track::SegDetection;
use crate::StageAError;
use scail_media::resize::opencv::axis_taps;

/// Something that finds subjects in one frame. SAM3 implements it; tests and
/// user-supplied masks can too.
pub trait Segmenter {
    fn detect(&mut self, frame: &RgbImage) -> Result<Vec<SegDetection>, StageAError>;
}

/// The files of the SAM3 ONNX export.
#[derive(Clone, Debug)]
pub struct Sam3Files {
    pub vision_encoder: PathBuf,
    pub text_encoder: PathBuf,
    pub decoder: PathBuf,
    pub tokenizer: PathBuf,
}

impl Sam3Files {
    /// The layout `scail weights` writes: `<dir>/sam3/{vision_encoder,text_encoder,decoder}.onnx`
    /// and `<dir>/sam3/tokenizer.json`, the export's own names, so each graph's external
    /// weights file (`vision_encoder.onnx.data`, ...) sits where the graph says it is.
    pub fn in_dir(dir: &Path) -> Self {
        let d = dir.join(crate::weights::SAM3_DIR);
        Self {
            vision_encoder: d.join("vision_encoder.onnx"),
            text_encoder: d.join("text_encoder.onnx"),
            decoder: d.join("decoder.onnx"),
            tokenizer: d.join("tokenizer.json"),
        }
    }
}

struct Prompt {
    features: HostTensor,
    mask: HostTensor,
}

pub struct Sam3Segmenter {
    vision: OnnxModel,
    decoder: OnnxModel,
    prompts: Vec<Prompt>,
    prompt_words: String,
    image_size: (u32, u32),
    feature_input: String,
    mask_input: String,
    /// The vision outputs the decoder takes, by name.
    vision_inputs: Vec<String>,
    /// Detections scoring below this are not even upsampled.
    pub min_score: f32,
}

fn sig(model: &OnnxModel, detail: String) -> StageAError {
    StageAError::Runtime(RuntimeError::Signature {
        model: model.path().display().to_string(),
        detail,
    })
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Sam3Segmenter {
    /// Loads the graphs and encodes each prompt once.
    pub fn load(
        files: &Sam3Files,
        prompts: &[String],
        rt: &RuntimeConfig,
    ) -> Result<Self, StageAError> {
        if prompts.is_empty() {
            return Err(StageAError::Invalid("the SAM3 prompt list is empty".into()));
        }
        let vision = OnnxModel::load(&files.vision_encoder, rt)?;
        let mut text = OnnxModel::load(&files.text_encoder, rt)?;
        let decoder = OnnxModel::load(&files.decoder, rt)?;
        let tok = ClipTokenizer::from_file(&files.tokenizer)?;

        let img_in = vision
            .inputs()
            .first()
            .ok_or_else(|| sig(&vision, "no inputs".into()))?;
        // An image input [B, 3, H, W] of floats; a graph that takes something else is not
        // SAM3's vision encoder (dynamic H and W mean the published 1008).
        let image_size = match (img_in.elem, img_in.shape.as_slice()) {
            (ElemType::F32, [_, 3, h, w]) if *h > 0 && *w > 0 => (*w as u32, *h as u32),
            (ElemType::F32, [_, 3, _, _]) => (1008, 1008),
            (e, shape) => {
                return Err(sig(
                    &vision,
                    format!(
                        "input `{}` is {e:?} {shape:?}; SAM3's vision encoder takes float \
                         images [1, 3, 1008, 1008]",
                        img_in.name
                    ),
                ))
            }
        };

        // Text encoder: ids and attention mask, found by name, else by order.
        let ids_name = text
            .input_named_or_typed("input_ids", ElemType::I64)
            .map(|s| s.name.clone());
        let (ids_name, att_name) = match ids_name {
            Ok(n) => {
                let att = text
                    .inputs()
                    .iter()
                    .find(|s| s.name != n)
                    .map(|s| s.name.clone());
                (n, att)
            }
            Err(_) => {
                let ins = text.inputs();
                (
                    ins.first().map(|s| s.name.clone()).unwrap_or_default(),
                    ins.get(1).map(|s| s.name.clone()),
                )
            }
        };
        let mut encoded = Vec::new();
        for p in prompts {
            let (ids, att) = tok.encode(p)?;
            let n = ids.len() as i64;
            let mut inputs = vec![(ids_name.clone(), HostTensor::i64(vec![1, n], ids))];
            if let Some(a) = &att_name {
                inputs.push((a.clone(), HostTensor::i64(vec![1, n], att)));
            }
            let mut out = text.run(inputs)?;
            let feat_name = text
                .outputs()
                .iter()
                .find(|s| s.elem == ElemType::F32)
                .map(|s| s.name.clone())
                .ok_or_else(|| sig(&text, "no float output for text features".into()))?;
            let mask_name = text
                .outputs()
                .iter()
                .find(|s| s.elem == ElemType::Bool || (s.elem == ElemType::I64))
                .map(|s| s.name.clone());
            let features = out.remove(&feat_name).expect("declared output");
            let mask = match mask_name.and_then(|m| out.remove(&m)) {
                Some(m) => m,
                None => HostTensor::bool(vec![1, n], vec![true; n as usize]),
            };
            encoded.push(Prompt { features, mask });
        }

        // Decoder prompt inputs: the float input that is not a vision feature, and the
        // mask input; names differ between exports (text_* or prompt_*).
        let vision_names: Vec<String> = vision.outputs().iter().map(|s| s.name.clone()).collect();
        let others: Vec<_> = decoder
            .inputs()
            .iter()
            .filter(|s| !vision_names.contains(&s.name))
            .collect();
        let feature_input = others
            .iter()
            .find(|s| s.elem == ElemType::F32)
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                sig(
                    &decoder,
                    format!(
                        "no prompt-feature input; inputs: {}",
                        crate::runtime::names(decoder.inputs())
                    ),
                )
            })?;
        let mask_input = others
            .iter()
            .find(|s| s.elem != ElemType::F32)
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                sig(
                    &decoder,
                    format!(
                        "no prompt-mask input; inputs: {}",
                        crate::runtime::names(decoder.inputs())
                    ),
                )
            })?;
        for s in decoder.inputs() {
            if s.name != feature_input && s.name != mask_input && !vision_names.contains(&s.name) {
                return Err(sig(
                    &decoder,
                    format!(
                        "input `{}` is neither a vision output nor a prompt input",
                        s.name
                    ),
                ));
            }
        }
        // Prompt masks in the element type the decoder declares, once, not per frame.
        let want_bool = decoder
            .inputs()
            .iter()
            .any(|s| s.name == mask_input && s.elem == ElemType::Bool);
        for p in &mut encoded {
            let converted = match (&p.mask.data, want_bool) {
                (TensorData::I64(v), true) => Some(HostTensor::bool(
                    p.mask.shape.clone(),
                    v.iter().map(|&x| x != 0).collect(),
                )),
                (TensorData::Bool(v), false) => Some(HostTensor::i64(
                    p.mask.shape.clone(),
                    v.iter().map(|&x| x as i64).collect(),
                )),
                _ => None,
            };
            if let Some(m) = converted {
                p.mask = m;
            }
        }
        // The decoder's outputs, checked now rather than at the first frame.
        let outs = decoder.outputs();
        let has = |name: &str| outs.iter().any(|o| o.name == name);
        let masks4 = outs
            .iter()
            .filter(|o| o.elem == ElemType::F32 && o.shape.len() == 4)
            .count();
        if !has("pred_logits") || !(has("pred_masks") || masks4 == 1) {
            return Err(sig(
                &decoder,
                format!(
                    "outputs {}; SAM3's decoder gives pred_masks, pred_logits (and pred_boxes, \
                     presence_logits)",
                    crate::runtime::names(outs)
                ),
            ));
        }
        let vision_inputs = decoder
            .inputs()
            .iter()
            .filter(|s| vision_names.contains(&s.name))
            .map(|s| s.name.clone())
            .collect();
        Ok(Self {
            vision,
            decoder,
            prompts: encoded,
            vision_inputs,
            prompt_words: prompts.join(", "),
            image_size,
            feature_input,
            mask_input,
            min_score: 0.25,
        })
    }

    pub fn prompt_words(&self) -> &str {
        &self.prompt_words
    }

    /// The encoder's input size (width, height), from the graph.
    pub fn input_size(&self) -> (u32, u32) {
        self.image_size
    }

    /// The vision input: [`input_pixels`], x / 127.5 - 1 (mean and std 0.5), CHW.
    fn image_tensor(&self, frame: &RgbImage) -> HostTensor {
        let (w, h) = self.image_size;
        let r = input_pixels(frame, self.image_size);
        let plane = (w * h) as usize;
        let mut chw = vec![0f32; plane * 3];
        for (p, px) in r.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * plane + p] = px[c] as f32 / 127.5 - 1.0;
            }
        }
        HostTensor::f32(vec![1, 3, h as i64, w as i64], chw)
    }
}

/// The frame as the encoder sees it: transformers' SAM3 image processor resizes with
/// torchvision's antialiased bilinear on uint8, reproduced bit for bit.
pub fn input_pixels(frame: &RgbImage, (w, h): (u32, u32)) -> RgbImage {
    frame.resize_aa_bilinear(w as usize, h as usize)
}

/// Mask probability above which a pixel belongs to the subject (transformers' default).
pub const MASK_THRESHOLD: f32 = 0.5;

/// One mask-logit map to a frame-sized mask as transformers' post-processing makes it:
/// sigmoid, bilinear upsampling (half-pixel centres, no antialias), then > 0.5. Upsampling
/// the probabilities rather than the logits matters at the edges: sigmoid is not linear.
pub fn logits_to_mask(logits: &[f32], lw: u32, lh: u32, width: u32, height: u32) -> Mask {
    let probs: Vec<f32> = logits.iter().map(|&l| sigmoid(l)).collect();
    let xs = axis_taps(lw as usize, width as usize);
    let ys = axis_taps(lh as usize, height as usize);
    let mut m = Mask::empty(width, height);
    let lw = lw as usize;
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            let p = |x: usize, y: usize| probs[y * lw + x];
            let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
            let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
            if (1.0 - fy) * top + fy * bot > MASK_THRESHOLD {
                m.data[oy * width as usize + ox] = 1;
            }
        }
    }
    m
}

impl Segmenter for Sam3Segmenter {
    fn detect(&mut self, frame: &RgbImage) -> Result<Vec<SegDetection>, StageAError> {
        let img = self.image_tensor(frame);
        let img_name = self.vision.inputs()[0].name.clone();
        let feats = self.vision.run(vec![(img_name, img)])?;
        let mut dets = Vec::new();
        for pi in 0..self.prompts.len() {
            let p = &self.prompts[pi];
            let mut inputs: Vec<(&str, &HostTensor)> = Vec::new();
            for n in &self.vision_inputs {
                let t = feats.get(n).ok_or_else(|| {
                    sig(&self.vision, format!("the vision encoder gave no `{n}`"))
                })?;
                inputs.push((n.as_str(), t));
            }
            inputs.push((self.feature_input.as_str(), &p.features));
            inputs.push((self.mask_input.as_str(), &p.mask));
            let out = self.decoder.run_refs(&inputs)?;
            let find = |name: &str, rank: usize| {
                out.get(name).or_else(|| {
                    let mut it = out.values().filter(|t| t.shape.len() == rank);
                    match (it.next(), it.next()) {
                        (Some(t), None) => Some(t),
                        _ => None,
                    }
                })
            };
            let masks = find("pred_masks", 4)
                .ok_or_else(|| sig(&self.decoder, "no pred_masks output".into()))?;
            let logits = out
                .get("pred_logits")
                .ok_or_else(|| sig(&self.decoder, "no pred_logits output".into()))?;
            let presence = out
                .get("presence_logits")
                .and_then(|t| t.as_f32())
                .and_then(|v| v.first().copied());
            let (Some(mv), Some(lv)) = (masks.as_f32(), logits.as_f32()) else {
                return Err(sig(
                    &self.decoder,
                    "mask or logit output is not float".into(),
                ));
            };
            let (q, mh, mw) = match masks.shape.as_slice() {
                [_, q, h, w] => (*q as usize, *h as u32, *w as u32),
                s => return Err(sig(&self.decoder, format!("pred_masks shape {s:?}"))),
            };
            if lv.len() < q || mv.len() != q * (mh * mw) as usize {
                return Err(sig(
                    &self.decoder,
                    "pred_logits / pred_masks sizes disagree".into(),
                ));
            }
            // Boxes: xyxy relative to the image, scaled to the frame (optional: an export
            // without them still segments).
            let boxes = out
                .get("pred_boxes")
                .and_then(|t| t.as_f32())
                .filter(|b| b.len() == q * 4);
            let presence = presence.map_or(1.0, sigmoid);
            let (fw, fh) = dims(frame);
            for (qi, &l) in lv.iter().enumerate().take(q) {
                let score = sigmoid(l) * presence;
                // Kept when strictly above, as transformers' post-processing keeps them.
                if score <= self.min_score {
                    continue;
                }
                let plane = (mh * mw) as usize;
                let mask = logits_to_mask(&mv[qi * plane..(qi + 1) * plane], mw, mh, fw, fh);
                let bbox = boxes.map(|b| {
                    let b = &b[qi * 4..qi * 4 + 4];
                    BBox::new(
                        b[0] * fw as f32,
                        b[1] * fh as f32,
                        b[2] * fw as f32,
                        b[3] * fh as f32,
                    )
                });
                dets.push(SegDetection {
                    mask,
                    score,
                    bbox,
                    prompt: pi,
                    query: qi,
                    appearance: None,
                });
            }
        }
        Ok(dets)
    }
}
