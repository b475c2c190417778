#!/usr/bin/env python3
"""Builds stand-in ONNX graphs for scail's Stage A with the published graphs' input and
output signatures (names, element types, shapes; see docs/spec/stagea.md).

Tiny mode (default) writes small graphs whose outputs are cheap, deterministic functions
of the input, so the Rust host code has something real to decode offline:
  yolox_l.onnx            images[1,3,640,640] -> output[1,8400,85]
                          (bright 32 px cells become person anchors)
  dw-ll_ucoco_384.onnx    input[1,3,384,288] -> simcc_x[1,133,576], simcc_y[1,133,768]
                          (a fixed standing figure inside the crop, confidence 0.9)
  sam3/vision_encoder.onnx  images[1,3,1008,1008] -> fpn_feat_0/1/2, fpn_pos_2
                           (weights in vision_encoder.onnx.data, as in the real export)
  sam3/text_encoder.onnx    input_ids, attention_mask[1,32] int64 -> text_features, text_mask
                           (weights in text_encoder.onnx.data)
  sam3/decoder.onnx         fpn feats + prompt -> pred_masks[1,200,288,288], pred_boxes,
                          pred_logits, presence_logits (query 0 = bright region, query 1 =
                          dark region, both confident)
  sam3/tokenizer.json     a CLIP-BPE tokenizer.json covering the default prompts

--real-size writes FLOP-matched random-weight conv stacks with the real YOLOX-L
(~78.8 GMAC at 640 px) and DWPose-l (~10 GMAC at 288x384) input/output signatures, for
the CPU benchmark (bench/stagea_bench.sh). They are not the real architectures.

Usage: make_standin_onnx.py OUT_DIR [--real-size]
"""
import argparse
import json
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

OPSET = 17
F = TensorProto.FLOAT

# Prompt words the default configuration uses (spec: human, character; animals).
PROMPTS = ["human", "character", "animal", "dog", "cat", "horse", "bird"]


def const(name, arr, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def save(model, path, external=False):
    model.opset_import[0].version = OPSET
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external:
        # Float weights in `<graph>.data` beside the graph, as the published SAM3 export stores
        # them: scail must load a graph whose weights live in a second file. Integer tensors
        # (sizes, pads) stay inline, where ONNX shape inference needs them.
        data = os.path.basename(path) + ".data"
        with open(path + ".data", "wb") as f:
            for t in model.graph.initializer:
                if t.data_type != F:
                    continue
                raw = numpy_helper.to_array(t).tobytes()
                offset = f.tell()
                f.write(raw)
                t.ClearField("float_data")
                t.raw_data = raw
                set_external_data(t, data, offset=offset, length=len(raw))
                t.data_location = TensorProto.EXTERNAL
                t.ClearField("raw_data")
        onnx.save(model, path)
        print(f"wrote {path} + {data} ({os.path.getsize(path + '.data')} bytes of weights)")
        return
    onnx.save(model, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def yolox_tiny(path):
    nodes, inits = [], []
    outs = []
    for level, s in enumerate([8, 16, 32]):
        n = 640 // s
        w = np.zeros((85, 3, 1, 1), np.float32)
        b = np.zeros(85, np.float32)
        b[0:2] = 0.5
        b[2:4] = math.log(4.0)  # boxes 4 strides wide
        if s == 32:
            w[4, :, 0, 0] = np.array([0.299, 0.587, 0.114]) * 12.0 / 255.0
            b[4] = -8.0  # objectness > 0.5 for luminance above ~170
        else:
            b[4] = -12.0
        b[5] = 2.0  # person
        b[6:] = -6.0
        inits += [const(f"w{level}", w), const(f"b{level}", b)]
        nodes += [
            helper.make_node("AveragePool", ["images"], [f"p{level}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("Conv", [f"p{level}", f"w{level}", f"b{level}"], [f"c{level}"]),
            helper.make_node("Reshape", [f"c{level}", "shape85"], [f"r{level}"]),
        ]
        outs.append(f"r{level}")
    inits += [
        const("shape85", [1, 85, -1], np.int64),
        const("s0", [0], np.int64),
        const("s4", [4], np.int64),
        const("s85", [85], np.int64),
        const("ax2", [2], np.int64),
    ]
    nodes += [
        helper.make_node("Concat", outs, ["cat"], axis=2),
        helper.make_node("Transpose", ["cat"], ["raw"], perm=[0, 2, 1]),
        helper.make_node("Slice", ["raw", "s0", "s4", "ax2"], ["boxes"]),
        helper.make_node("Slice", ["raw", "s4", "s85", "ax2"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
        helper.make_node("Concat", ["boxes", "probs"], ["output"], axis=2),
    ]
    g = helper.make_graph(
        nodes,
        "yolox_l_standin",
        [helper.make_tensor_value_info("images", F, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output", F, [1, 8400, 85])],
        inits,
    )
    save(helper.make_model(g), path)


def figure_points():
    """133 keypoints (x, y) of a standing figure in 288x384 crop pixels."""
    pts = np.zeros((133, 2), np.float32)
    body = [(0, 20), (-4, 16), (4, 16), (-9, 18), (9, 18), (-18, 40), (18, 40), (-26, 70),
            (26, 70), (-30, 98), (30, 98), (-12, 100), (12, 100), (-14, 140), (14, 140),
            (-15, 178), (15, 178)]
    feet = [(-20, 182), (-10, 182), (-15, 180), (20, 182), (10, 182), (15, 180)]
    for i, (dx, y) in enumerate(body + feet):
        pts[i] = (dx, y)
    for i in range(68):
        a = i / 68 * 2 * math.pi
        pts[23 + i] = (7 * math.cos(a), 17 + 8 * math.sin(a))
    for base, wx, d in [(91, -30, -1), (112, 30, 1)]:
        pts[base] = (wx, 100)
        for f in range(5):
            for j in range(4):
                pts[base + 1 + f * 4 + j] = (wx + d * (f * 2.5 - 5), 104 + 3 * (j + 1))
    # Figure units -> crop pixels: 180 units tall inside the 1/1.25 central band.
    scale = 384 / 1.25 / 190
    pts[:, 0] = 144 + pts[:, 0] * scale
    pts[:, 1] = 384 * 0.1 + pts[:, 1] * scale
    return pts


def dwpose_tiny(path):
    pts = figure_points() * 2.0  # SimCC bins are half pixels
    sigma = 3.0
    nodes, inits = [], []
    inits += [
        const("px", pts[:, 0].reshape(1, 133, 1)),
        const("py", pts[:, 1].reshape(1, 133, 1)),
        const("binsx", np.arange(576, dtype=np.float32).reshape(1, 1, 576)),
        const("binsy", np.arange(768, dtype=np.float32).reshape(1, 1, 768)),
        const("neg_inv2s2", np.float32(-1.0 / (2 * sigma * sigma))),
        const("peak", np.float32(0.9)),
        const("zero", np.float32(0.0)),
    ]
    nodes += [
        # Ties the outputs to the input without changing them.
        helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),
    ]
    for ax, p, bins in [("x", "px", "binsx"), ("y", "py", "binsy")]:
        nodes += [
            helper.make_node("Sub", [bins, p], [f"d{ax}"]),
            helper.make_node("Mul", [f"d{ax}", f"d{ax}"], [f"d2{ax}"]),
            helper.make_node("Mul", [f"d2{ax}", "neg_inv2s2"], [f"e{ax}"]),
            helper.make_node("Exp", [f"e{ax}"], [f"g{ax}"]),
            helper.make_node("Mul", [f"g{ax}", "peak"], [f"h{ax}"]),
            helper.make_node("Add", [f"h{ax}", "z"], [f"simcc_{ax}"]),
        ]
    g = helper.make_graph(
        nodes,
        "dwpose_standin",
        [helper.make_tensor_value_info("input", F, [1, 3, 384, 288])],
        [
            helper.make_tensor_value_info("simcc_x", F, [1, 133, 576]),
            helper.make_tensor_value_info("simcc_y", F, [1, 133, 768]),
        ],
        inits,
    )
    save(helper.make_model(g), path)


def sam3_vision_tiny(path):
    nodes, inits = [], []
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    outs = []
    for name, size in [("fpn_feat_0", 288), ("fpn_feat_1", 144), ("fpn_feat_2", 72), ("fpn_pos_2", 72)]:
        # 3 -> 2 channels (luminance, -luminance), then padded to 256 with zeros.
        w = np.zeros((2, 3, 1, 1), np.float32)
        w[0, :, 0, 0] = lum
        w[1, :, 0, 0] = -lum
        if name == "fpn_pos_2":
            w[:] = 0.0
        inits += [const(f"w_{name}", w), const(f"sz_{name}", [1, 3, size, size], np.int64)]
        nodes += [
            helper.make_node("Resize", ["images", "", "", f"sz_{name}"], [f"rs_{name}"], mode="linear"),
            helper.make_node("Conv", [f"rs_{name}", f"w_{name}"], [f"c_{name}"]),
            helper.make_node("Pad", [f"c_{name}", "pads"], [name], mode="constant"),
        ]
        outs.append(helper.make_tensor_value_info(name, F, [1, 256, size, size]))
    inits.append(const("pads", [0, 0, 0, 0, 0, 254, 0, 0], np.int64))
    g = helper.make_graph(
        nodes,
        "sam3_vision_standin",
        [helper.make_tensor_value_info("images", F, [1, 3, 1008, 1008])],
        outs,
        inits,
    )
    save(helper.make_model(g), path, external=True)


def sam3_text_tiny(path):
    rng = np.random.default_rng(0)
    table = rng.standard_normal((64, 256)).astype(np.float32) * 0.1
    inits = [const("table", table), const("m64", 64, np.int64)]
    nodes = [
        helper.make_node("Mod", ["input_ids", "m64"], ["ids"]),
        helper.make_node("Gather", ["table", "ids"], ["text_features"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["text_mask"], to=TensorProto.BOOL),
    ]
    g = helper.make_graph(
        nodes,
        "sam3_text_standin",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 32]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, 32]),
        ],
        [
            helper.make_tensor_value_info("text_features", F, [1, 32, 256]),
            helper.make_tensor_value_info("text_mask", TensorProto.BOOL, [1, 32]),
        ],
        inits,
    )
    save(helper.make_model(g), path, external=True)


def sam3_decoder_tiny(path):
    q = 200
    w = np.zeros((q, 2, 1, 1), np.float32)
    b = np.full(q, -10.0, np.float32)
    # Query 0: luminance above 0.2 in [-1, 1] units; query 1: below -0.2.
    w[0, 0, 0, 0], b[0] = 10.0, -2.0
    w[1, 1, 0, 0], b[1] = 10.0, -2.0
    logits = np.full((1, q), -8.0, np.float32)
    logits[0, 0], logits[0, 1] = 2.0, 1.5
    boxes = np.tile(np.array([0.25, 0.25, 0.75, 0.75], np.float32), (1, q, 1))
    inits = [
        const("w", w),
        const("b", b),
        const("logits", logits),
        const("boxes", boxes),
        const("presence", np.array([[3.0]], np.float32)),
        const("c0", [0], np.int64),
        const("c2", [2], np.int64),
        const("ax1", [1], np.int64),
        const("zero", np.float32(0.0)),
    ]
    nodes = [
        helper.make_node("Slice", ["fpn_feat_0", "c0", "c2", "ax1"], ["two"]),
        helper.make_node("Conv", ["two", "w", "b"], ["pred_masks"]),
        # Tie every other input in with a zero weight so the signature is real.
        helper.make_node("ReduceMean", ["fpn_feat_1"], ["m1"], keepdims=0),
        helper.make_node("ReduceMean", ["fpn_feat_2"], ["m2"], keepdims=0),
        helper.make_node("ReduceMean", ["fpn_pos_2"], ["m3"], keepdims=0),
        helper.make_node("ReduceMean", ["prompt_features"], ["m4"], keepdims=0),
        helper.make_node("Cast", ["prompt_mask"], ["pmf"], to=F),
        helper.make_node("ReduceMean", ["pmf"], ["m5"], keepdims=0),
        helper.make_node("Sum", ["m1", "m2", "m3", "m4", "m5"], ["msum"]),
        helper.make_node("Mul", ["msum", "zero"], ["z"]),
        helper.make_node("Add", ["logits", "z"], ["pred_logits"]),
        helper.make_node("Add", ["boxes", "z"], ["pred_boxes"]),
        helper.make_node("Add", ["presence", "z"], ["presence_logits"]),
    ]
    g = helper.make_graph(
        nodes,
        "sam3_decoder_standin",
        [
            helper.make_tensor_value_info("fpn_feat_0", F, [1, 256, 288, 288]),
            helper.make_tensor_value_info("fpn_feat_1", F, [1, 256, 144, 144]),
            helper.make_tensor_value_info("fpn_feat_2", F, [1, 256, 72, 72]),
            helper.make_tensor_value_info("fpn_pos_2", F, [1, 256, 72, 72]),
            helper.make_tensor_value_info("prompt_features", F, [1, 32, 256]),
            helper.make_tensor_value_info("prompt_mask", TensorProto.BOOL, [1, 32]),
        ],
        [
            helper.make_tensor_value_info("pred_masks", F, [1, q, 288, 288]),
            helper.make_tensor_value_info("pred_boxes", F, [1, q, 4]),
            helper.make_tensor_value_info("pred_logits", F, [1, q]),
            helper.make_tensor_value_info("presence_logits", F, [1, 1]),
        ],
        inits,
    )
    save(helper.make_model(g), path)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tokenizer_tiny(path):
    """A CLIP-layout BPE tokenizer.json: byte symbols (ids 0-255), the same with the
    end-of-word marker (256-511), left-to-right merges spelling each prompt word, and the
    real CLIP special ids 49406/49407."""
    b2u = bytes_to_unicode()
    syms = [b2u[b] for b in range(256)]
    vocab = {s: i for i, s in enumerate(syms)}
    for i, s in enumerate(syms):
        vocab[s + "</w>"] = 256 + i
    merges = []
    for word in PROMPTS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        cur = parts[0]
        for p in parts[1:]:
            merges.append(f"{cur} {p}")
            cur = cur + p
            vocab.setdefault(cur, len(vocab))
    vocab["<|startoftext|>"] = 49406
    vocab["<|endoftext|>"] = 49407
    tok = {
        "version": "1.0",
        "added_tokens": [
            {"id": 49406, "content": "<|startoftext|>", "special": True},
            {"id": 49407, "content": "<|endoftext|>", "special": True},
        ],
        "model": {"type": "BPE", "vocab": vocab, "merges": merges, "end_of_word_suffix": "</w>"},
    }
    with open(path, "w") as f:
        json.dump(tok, f)
    print(f"wrote {path}")


def conv_stack(path, in_name, in_shape, outputs, widths, strides, name):
    """Random-weight 3x3 conv stack (ReLU) with light heads shaped to `outputs`."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x, c = in_name, in_shape[1]
    h, w = in_shape[2], in_shape[3]
    for i, (co, s) in enumerate(zip(widths, strides)):
        k = rng.standard_normal((co, c, 3, 3)).astype(np.float32) * math.sqrt(2.0 / (9 * c))
        inits.append(const(f"k{i}", k))
        inits.append(const(f"kb{i}", np.zeros(co, np.float32)))
        nodes.append(helper.make_node("Conv", [x, f"k{i}", f"kb{i}"], [f"y{i}"], pads=[1, 1, 1, 1], strides=[s, s]))
        nodes.append(helper.make_node("Relu", [f"y{i}"], [f"a{i}"]))
        x, c = f"a{i}", co
        h, w = (h + s - 1) // s, (w + s - 1) // s
    outs = []
    positions = h * w
    for oname, oshape in outputs:
        if len(outputs) == 1:
            # Detector head: 1x1 conv to (rows / positions) * 85 channels, laid out as
            # [1, anchors, 85] (anchors = 8400 = 21 x 20 x 20 at stride 32).
            per = oshape[1] // positions
            k = rng.standard_normal((oshape[2] * per, c, 1, 1)).astype(np.float32) * 0.01
            inits += [const(f"hk_{oname}", k), const(f"hs_{oname}", [1, oshape[2], oshape[1]], np.int64)]
            nodes += [
                helper.make_node("Conv", [x, f"hk_{oname}"], [f"hc_{oname}"]),
                helper.make_node("Reshape", [f"hc_{oname}", f"hs_{oname}"], [f"hr_{oname}"]),
                helper.make_node("Transpose", [f"hr_{oname}"], [oname], perm=[0, 2, 1]),
            ]
        else:
            # SimCC head: 1x1 conv to the keypoints, flatten positions, linear to the bins.
            kp, bins = oshape[1], oshape[2]
            k = rng.standard_normal((kp, c, 1, 1)).astype(np.float32) * 0.01
            fc = rng.standard_normal((positions, bins)).astype(np.float32) * 0.01
            inits += [const(f"hk_{oname}", k), const(f"fc_{oname}", fc), const(f"hs_{oname}", [1, kp, positions], np.int64)]
            nodes += [
                helper.make_node("Conv", [x, f"hk_{oname}"], [f"hc_{oname}"]),
                helper.make_node("Reshape", [f"hc_{oname}", f"hs_{oname}"], [f"hr_{oname}"]),
                helper.make_node("MatMul", [f"hr_{oname}", f"fc_{oname}"], [oname]),
            ]
        outs.append(helper.make_tensor_value_info(oname, F, oshape))
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(in_name, F, in_shape)], outs, inits)
    save(helper.make_model(g), path)


def macs(in_shape, widths, strides):
    c, h, w, total = in_shape[1], in_shape[2], in_shape[3], 0
    for co, s in zip(widths, strides):
        h, w = (h + s - 1) // s, (w + s - 1) // s
        total += co * c * 9 * h * w
        c = co
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--real-size", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    j = lambda n: os.path.join(a.out_dir, n)
    if a.real_size:
        # Widths/strides chosen so the conv MACs land near the real models' figures.
        yw = [64] + [128] * 5 + [256] * 7 + [512] * 6 + [1024] * 5
        ys = [2, 2, 1, 1, 1, 1, 2] + [1] * 6 + [2] + [1] * 5 + [2] + [1] * 4
        dw, ds = [64, 128, 256, 256, 512, 512, 768, 768, 768], [2, 2, 2, 1, 2, 1, 1, 1, 1]
        print(f"yolox stand-in: {macs([1, 3, 640, 640], yw, ys) / 1e9:.1f} GMAC")
        print(f"dwpose stand-in: {macs([1, 3, 384, 288], dw, ds) / 1e9:.1f} GMAC")
        conv_stack(j("yolox_l.onnx"), "images", [1, 3, 640, 640], [("output", [1, 8400, 85])], yw, ys, "yolox_real_size")
        conv_stack(j("dw-ll_ucoco_384.onnx"), "input", [1, 3, 384, 288],
                   [("simcc_x", [1, 133, 576]), ("simcc_y", [1, 133, 768])], dw, ds, "dwpose_real_size")
        return
    yolox_tiny(j("yolox_l.onnx"))
    dwpose_tiny(j("dw-ll_ucoco_384.onnx"))
    # SAM3 under the export's own names in sam3/ (the layout `scail weights` uses).
    os.makedirs(j("sam3"), exist_ok=True)
    sam3_vision_tiny(j("sam3/vision_encoder.onnx"))
    sam3_text_tiny(j("sam3/text_encoder.onnx"))
    sam3_decoder_tiny(j("sam3/decoder.onnx"))
    tokenizer_tiny(j("sam3/tokenizer.json"))


if __name__ == "__main__":
    main()
