#!/usr/bin/env python3
"""SAM3 reference fixture for scail's Stage A, from Hugging Face transformers' own code.

Builds transformers' `Sam3Model` at a tiny random configuration (the real image size 1008,
FPN width 256, 200 queries and 288x288 mask logits; a thin ViT, CLIP text tower and one-layer
DETR), exports it to ONNX as the public exports split it, and records what transformers'
`Sam3Processor` makes of frames of the test media:

  OUT/sam3/vision_encoder.onnx (+ .onnx.data)  images [1,3,1008,1008] f32
                                               -> fpn_feat_0, fpn_feat_1, fpn_feat_2, fpn_pos_2
  OUT/sam3/text_encoder.onnx (+ .onnx.data)    input_ids, attention_mask [1,32] i64
                                               -> text_features [1,32,256] f32, text_mask bool
  OUT/sam3/decoder.onnx (+ .onnx.data)         fpn_feat_0..2, fpn_pos_2, text_features, text_mask
                                               -> pred_masks [1,200,288,288], pred_boxes [1,200,4],
                                                  pred_logits [1,200], presence_logits [1,1]
  OUT/sam3/tokenizer.json, tokenizer_config.json, processor_config.json
                                               a CLIP byte-level BPE (every byte covered)
  OUT/frames/*.png                             the frames, as Stage A receives them
  OUT/expected.json                            per frame and prompt: transformers' scores and
                                               boxes after `post_process_instance_segmentation`,
                                               the sha256 of the processor's 1008x1008 input
  OUT/masks/*.png                              its masks of the 3 best detections of each
  OUT/tokenizer_cases.json                     transformers' ids and attention masks for the
                                               prompts and for odd text

Weights are random draws rounded to a 1/64 grid: still a random network, but git compresses
the files severalfold. The fixture is development tooling output; scail never runs Python.

Needs: torch, torchvision, transformers 5.x, tokenizers, onnx, onnxruntime, pillow, numpy,
ffmpeg on PATH. Usage: sam3_reference.py OUT_DIR --media testdata/media
"""
import argparse
import hashlib
import json
import os
import subprocess

import numpy as np
import torch
from PIL import Image

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer, Sam3Config, Sam3Model, Sam3Processor
from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor
from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

SEED = 20261206
# The prompts scail sends (stagea.rs default_prompts) and the threshold it keeps (0.25, the
# reference pipeline's confidence); transformers' mask threshold is its default 0.5.
PROMPTS = ["human", "character", "animal", "dog", "cat", "horse", "bird"]
SCORE_THRESHOLD = 0.25
MASK_THRESHOLD = 0.5
MASKS_KEPT = 3
# (media file, frame index, width): frames as scail's Stage A sees them, at a working size.
FRAMES = [
    ("dance_woman_16fps.mp4", 0, 320),
    ("dance_woman_16fps.mp4", 40, 320),
    ("talk_show_host_30fps_audio.mp4", 10, 288),
    ("ref_anime_girl_rgba.png", 0, 231),
]
ODD_TEXT = [
    "",
    "   ",
    "Human",
    "  a   DANCING\tperson\n",
    "it's the dog's ball, isn't it?",
    "person #2 at 10:30 (left)",
    "Ünïcödé café naïve résumé",
    "犬と猫",
    "emoji 🐶🐱 and symbols ©®™",
    "e\u0301t\u0301e\u0301 combining accents",
    " ".join(["character"] * 40),
    "x" * 200,
]
CORPUS = (
    "a human character walks and dances on the stage while a dog, a cat, a horse and a bird "
    "watch the animal person in the picture. the woman and the man in the video move their "
    "arms and legs; people and animals, characters and humans, dancing and talking."
)


def build_tokenizer(out_dir):
    """A CLIP-style BPE over the full byte alphabet, merges learned on a small corpus."""
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS.lower()] * 4 + PROMPTS * 8, trainer)
    data = json.loads(tok.to_str())
    vocab = dict(data["model"]["vocab"])
    merges = data["model"]["merges"]
    # Every byte, alone and word-final, as in CLIP's vocabulary: no text falls to <unk>.
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        for t in (ch, ch + "</w>"):
            if t not in vocab:
                vocab[t] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    clip = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=32)
    proc = Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=clip)
    proc.save_pretrained(out_dir)
    return Sam3Processor.from_pretrained(out_dir), len(vocab)


def tiny_config(vocab_size):
    return Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                global_attn_indexes=[1],
                window_size=24,
                image_size=1008,
                patch_size=14,
                pretrain_image_size=336,
            ),
            fpn_hidden_size=256,
        ),
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            hidden_act="gelu",
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        ),
        geometry_encoder_config=dict(num_layers=1, intermediate_size=64),
        detr_encoder_config=dict(num_layers=1, intermediate_size=64),
        detr_decoder_config=dict(num_layers=1, intermediate_size=64, num_queries=200),
        mask_decoder_config=dict(),
    )


def randomize(model):
    """Random weights on a 1/64 grid (compressible), with a few heads widened so that the
    scores spread on both sides of the 0.25 threshold."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif p.dim() == 1:
                v = 0.05 * torch.randn(p.shape, generator=g)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                v = torch.randn(p.shape, generator=g) / max(fan_in, 1) ** 0.5
            p.copy_(torch.round(v * 64) / 64)


class Vision(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, images):
        out = self.m.get_vision_features(pixel_values=images)
        f, p = out.fpn_hidden_states, out.fpn_position_encoding
        return f[0], f[1], f[2], p[2]


class Text(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        out = self.m.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return out.pooler_output, attention_mask.bool()


class Decoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, fpn_feat_0, fpn_feat_1, fpn_feat_2, fpn_pos_2, text_features, text_mask):
        # Sam3Model.forward drops the last FPN level and reads the position encoding of the
        # level it keeps last; the others are not read on the text-only path.
        vis = Sam3VisionEncoderOutput(
            fpn_hidden_states=(fpn_feat_0, fpn_feat_1, fpn_feat_2, fpn_feat_2),
            fpn_position_encoding=(fpn_pos_2, fpn_pos_2, fpn_pos_2, fpn_pos_2),
        )

        class Embeds:
            pooler_output = text_features

        out = self.m(
            vision_embeds=vis,
            text_embeds=Embeds(),
            attention_mask=text_mask.long(),
        )
        return out.pred_masks, out.pred_boxes, out.pred_logits, out.presence_logits


def export(module, args, path, inputs, outputs):
    torch.onnx.export(
        module,
        args,
        path,
        input_names=inputs,
        output_names=outputs,
        opset_version=17,
        dynamo=False,
        do_constant_folding=True,
    )
    # The public exports keep weights in `<graph>.data` beside the graph.
    import onnx

    m = onnx.load(path)
    onnx.save(
        m,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=os.path.basename(path) + ".data",
        size_threshold=1024,
    )


def read_frame(media, name, index, width):
    src = os.path.join(media, name)
    if name.endswith(".png") or name.endswith(".jpg") or name.endswith(".jpeg"):
        img = Image.open(src).convert("RGB")
    else:
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", src, "-vf", f"select=eq(n\\,{index})", "-vframes", "1",
             "-f", "image2pipe", "-vcodec", "png", "-"],
            check=True, capture_output=True,
        ).stdout
        import io

        img = Image.open(io.BytesIO(raw)).convert("RGB")
    h = round(img.height * width / img.width / 2) * 2
    return img.resize((width, h), Image.BILINEAR)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--media", default="testdata/media")
    a = ap.parse_args()
    torch.manual_seed(SEED)
    sam3_dir = os.path.join(a.out, "sam3")
    frames_dir = os.path.join(a.out, "frames")
    os.makedirs(sam3_dir, exist_ok=True)
    os.makedirs(frames_dir, exist_ok=True)
    masks_dir = os.path.join(a.out, "masks")
    os.makedirs(masks_dir, exist_ok=True)

    processor, vocab_size = build_tokenizer(sam3_dir)
    model = Sam3Model(tiny_config(vocab_size)).eval()
    randomize(model)

    tok = processor.tokenizer
    cases = []
    for text in PROMPTS + ODD_TEXT:
        enc = tok(text, padding="max_length", max_length=32, truncation=True)
        cases.append({"text": text, "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    with open(os.path.join(a.out, "tokenizer_cases.json"), "w") as f:
        json.dump({"context_length": 32, "cases": cases}, f, ensure_ascii=False, indent=1)

    with torch.no_grad():
        img = torch.zeros(1, 3, 1008, 1008)
        feats = Vision(model)(img)
        ids = torch.tensor([cases[0]["input_ids"]])
        att = torch.tensor([cases[0]["attention_mask"]])
        tf, tm = Text(model)(ids, att)
        export(Vision(model), (img,), os.path.join(sam3_dir, "vision_encoder.onnx"), ["images"],
               ["fpn_feat_0", "fpn_feat_1", "fpn_feat_2", "fpn_pos_2"])
        export(Text(model), (ids, att), os.path.join(sam3_dir, "text_encoder.onnx"),
               ["input_ids", "attention_mask"], ["text_features", "text_mask"])
        export(Decoder(model), (*feats, tf, tm), os.path.join(sam3_dir, "decoder.onnx"),
               ["fpn_feat_0", "fpn_feat_1", "fpn_feat_2", "fpn_pos_2", "text_features", "text_mask"],
               ["pred_masks", "pred_boxes", "pred_logits", "presence_logits"])

    # Tracing leaves state behind in the traced modules: the reference results come from a
    # fresh instance with the same weights, and the exported graphs are checked against it.
    model = Sam3Model(tiny_config(vocab_size)).eval()
    randomize(model)
    import onnxruntime as ort

    sessions = {n: ort.InferenceSession(os.path.join(sam3_dir, f"{n}.onnx"))
                for n in ("vision_encoder", "text_encoder", "decoder")}

    expected = {"score_threshold": SCORE_THRESHOLD, "mask_threshold": MASK_THRESHOLD,
                "prompts": PROMPTS, "frames": []}
    for name, index, width in FRAMES:
        frame = read_frame(a.media, name, index, width)
        fname = f"{os.path.splitext(name)[0]}_{index}.png"
        frame.save(os.path.join(frames_dir, fname))
        frame = Image.open(os.path.join(frames_dir, fname)).convert("RGB")
        entry = {"file": fname, "width": frame.width, "height": frame.height, "prompts": []}
        pixels = processor(images=frame, return_tensors="pt")
        resized = torch.round((pixels.pixel_values[0] + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)
        entry["input_sha256"] = hashlib.sha256(resized.permute(1, 2, 0).contiguous().numpy().tobytes()).hexdigest()
        for prompt in PROMPTS:
            inputs = processor(images=frame, text=prompt, return_tensors="pt")
            with torch.no_grad():
                out = model(**inputs)
            res = processor.post_process_instance_segmentation(
                out, threshold=SCORE_THRESHOLD, mask_threshold=MASK_THRESHOLD,
                target_sizes=[(frame.height, frame.width)],
            )[0]
            # Masks of the best MASKS_KEPT detections (all of them would be megabytes of noise).
            order = torch.argsort(res["scores"], descending=True)[:MASKS_KEPT].tolist()
            mask_files = []
            for k in sorted(order):
                mname = f"{os.path.splitext(fname)[0]}_{prompt}_{k}.png"
                Image.fromarray((res["masks"][k].numpy() * 255).astype(np.uint8)).convert("1").save(
                    os.path.join(masks_dir, mname), optimize=True)
                mask_files.append({"index": k, "file": mname})
            all_scores = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid()).reshape(-1)
            feats = sessions["vision_encoder"].run(None, {"images": inputs.pixel_values.numpy()})
            tf, tm = sessions["text_encoder"].run(None, {"input_ids": inputs.input_ids.numpy(),
                                                         "attention_mask": inputs.attention_mask.numpy()})
            names = ["fpn_feat_0", "fpn_feat_1", "fpn_feat_2", "fpn_pos_2"]
            onnx_out = sessions["decoder"].run(None, {**dict(zip(names, feats)),
                                                      "text_features": tf, "text_mask": tm})
            drift = float(np.abs(onnx_out[2] - out.pred_logits.numpy()).max())
            assert drift < 1e-4, f"the exported graphs disagree with the model ({drift})"
            assert len(torch.nonzero(all_scores > SCORE_THRESHOLD)) == len(res["scores"])
            entry["prompts"].append({
                "prompt": prompt,
                "queries_scored": int(all_scores.numel()),
                "queries": torch.nonzero(all_scores > SCORE_THRESHOLD).reshape(-1).tolist(),
                "scores": [float(s) for s in res["scores"]],
                "boxes": [[float(v) for v in b] for b in res["boxes"]],
                "masks": mask_files,
                "max_score_below": float(all_scores[all_scores <= SCORE_THRESHOLD].max()) if (all_scores <= SCORE_THRESHOLD).any() else None,
            })
            print(f"{fname} {prompt!r}: {len(res['scores'])} kept of {all_scores.numel()}, "
                  f"scores {[round(float(s), 4) for s in res['scores']][:6]}")
        expected["frames"].append(entry)
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
