//! How a request samples: the solver, the named presets (the distilled fast recipe and the
//! hosted defaults) and the LoRAs fused into the DiT for it.

use serde::{Deserialize, Serialize};

use crate::schema::{defaults, wire_enum, WireEnum};

/// The solver that integrates the flow (a scail extension; the hosted endpoint runs UniPC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Sampler {
    /// UniPC, order 2 (bh2), as the reference.
    #[default]
    #[serde(rename = "unipc")]
    UniPc,
    /// DPM-Solver++ 2M.
    #[serde(rename = "dpm++")]
    DpmPp,
    /// First-order flow-matching Euler: what step-distilled LoRAs are trained for.
    #[serde(rename = "euler")]
    Euler,
}
wire_enum!(
    Sampler,
    "sampler",
    [
        ("unipc", Sampler::UniPc),
        ("dpm++", Sampler::DpmPp),
        ("euler", Sampler::Euler)
    ]
);

/// A named sampling recipe (a scail extension). The request's own steps, guidance scale, shift
/// and sampler win over the preset's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// 4 steps, CFG 1, shift 5, Euler: the lightx2v step-distillation LoRA's recipe.
    Fast,
    /// 8 steps, CFG 1, shift 5, Euler: the distillation LoRA with more steps.
    Balanced,
    /// 40 steps, CFG 5, shift 3, UniPC: the hosted defaults (no LoRA needed).
    #[default]
    Quality,
}
wire_enum!(
    Preset,
    "preset",
    [
        ("fast", Preset::Fast),
        ("balanced", Preset::Balanced),
        ("quality", Preset::Quality)
    ]
);

/// Steps, guidance scale, shift and solver of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    pub steps: u32,
    pub guidance_scale: f64,
    pub shift: f64,
    pub sampler: Sampler,
}

impl Preset {
    pub fn recipe(self) -> Recipe {
        match self {
            // The lightx2v Wan 2.1 I2V 4-step LoRA config
            // (configs/distill/wan21/wan_i2v_distill_lora_4step_cfg.json in the LightX2V
            // repository): infer_steps 4, sample_shift 5, enable_cfg false, denoising steps
            // 1000/750/500/250 — the uniform 4-step sigma grid our schedule makes, stepped
            // with flow-matching Euler.
            Preset::Fast => Recipe {
                steps: 4,
                guidance_scale: 1.0,
                shift: 5.0,
                sampler: Sampler::Euler,
            },
            // The same LoRA recipe at 8 steps, the top of the 4-8 step range the distillation
            // LoRA cards and workflows use: a middle ground of our choosing, not a published
            // config.
            Preset::Balanced => Recipe {
                steps: 8,
                ..Preset::Fast.recipe()
            },
            Preset::Quality => Recipe {
                steps: defaults::NUM_INFERENCE_STEPS,
                guidance_scale: defaults::GUIDANCE_SCALE,
                shift: defaults::SHIFT,
                sampler: Sampler::UniPc,
            },
        }
    }

    /// Whether the recipe needs a step-distillation LoRA to give a usable video.
    pub fn wants_distill_lora(self) -> bool {
        self != Preset::Quality
    }
}

/// Most LoRAs one request may name.
pub const MAX_LORAS: usize = 8;
/// Inclusive bounds of a LoRA's scale.
pub const LORA_SCALE_RANGE: (f64, f64) = (-4.0, 4.0);
/// File name extensions a LoRA may have (safetensors, or a PyTorch zip).
pub const LORA_EXTENSIONS: &[&str] = &["safetensors", "pt", "pth"];

/// A LoRA named in a request: a file inside the server's LoRA folder, never a path or URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraRef {
    pub name: String,
    pub scale: f64,
}

/// A LoRA resolved to its file, as the generator receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraFile {
    pub path: std::path::PathBuf,
    pub scale: f64,
}

/// Why `name` is not a plain LoRA file name (no folders, no hidden files, a known extension).
pub fn lora_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 200 {
        return Some("a LoRA name is 1 to 200 characters".into());
    }
    if name.contains(['/', '\\', '\0']) || name.starts_with('.') {
        return Some(
            "a LoRA is named by its file name inside the server's LoRA folder, not by a path"
                .into(),
        );
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    if !ext.is_some_and(|e| LORA_EXTENSIONS.contains(&e.as_str())) {
        return Some(format!(
            "a LoRA file name ends in .{}",
            LORA_EXTENSIONS.join(", .")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate_input;

    fn with(extra: serde_json::Value) -> serde_json::Value {
        let mut b = json!({"prompt": "p", "image_url": "https://e.com/a.png",
            "video_url": "https://e.com/b.mp4"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    }

    #[test]
    fn a_preset_fills_what_the_request_leaves_out() {
        for preset in [Preset::Fast, Preset::Balanced, Preset::Quality] {
            let r = preset.recipe();
            let i = validate_input(&with(json!({"preset": preset.as_str()}))).unwrap();
            assert_eq!(i.preset, Some(preset));
            assert_eq!(
                (i.num_inference_steps, i.guidance_scale, i.shift, i.sampler),
                (r.steps, r.guidance_scale, r.shift, r.sampler)
            );
        }
        // What the request gives wins over the preset.
        let i = validate_input(&with(
            json!({"preset": "fast", "num_inference_steps": 6, "sampler": "unipc"}),
        ))
        .unwrap();
        assert_eq!((i.num_inference_steps, i.sampler), (6, Sampler::UniPc));
        assert_eq!(i.shift, Preset::Fast.recipe().shift);
        // No preset: the hosted defaults, which the quality preset is.
        let i = validate_input(&with(json!({}))).unwrap();
        let q = Preset::Quality.recipe();
        assert_eq!(
            (
                i.preset,
                i.num_inference_steps,
                i.guidance_scale,
                i.shift,
                i.sampler
            ),
            (None, q.steps, q.guidance_scale, q.shift, q.sampler)
        );
        // The preset's values are checked like given ones: an explicit out-of-range value is
        // still refused, and an unknown preset names the choices.
        let e = validate_input(&with(json!({"preset": "turbo"}))).unwrap_err();
        assert_eq!(e[0].field(), Some("preset"));
        assert!(e[0].msg.contains("'fast'"), "{}", e[0].msg);
        let e =
            validate_input(&with(json!({"preset": "fast", "num_inference_steps": 0}))).unwrap_err();
        assert_eq!(e[0].field(), Some("num_inference_steps"));
    }

    #[test]
    fn the_document_lists_each_presets_recipe() {
        let doc = crate::openapi::input_schema();
        for (name, p) in Preset::ALL {
            let r = p.recipe();
            let got = &doc["properties"]["preset"]["x-recipes"][name];
            assert_eq!(got["num_inference_steps"], r.steps, "{name}");
            assert_eq!(got["guidance_scale"], r.guidance_scale, "{name}");
            assert_eq!(got["shift"], r.shift, "{name}");
            assert_eq!(got["sampler"], r.sampler.as_str(), "{name}");
        }
    }

    #[test]
    fn lora_names_are_plain_file_names() {
        assert_eq!(lora_name_problem("lightx2v_4step.safetensors"), None);
        assert_eq!(lora_name_problem("relighting-lora.PT"), None);
        for bad in ["", "a/b.pt", "..\\x.pt", ".x.pt", "x", "x.bin", "a\0.pt"] {
            assert!(lora_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
