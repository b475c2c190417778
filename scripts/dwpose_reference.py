#!/usr/bin/env python3
"""DWPose host-code reference for scail's Stage A, from rtmlib's own pre- and post-processing.

scail runs DWPose's two graphs (YOLOX-L person boxes, dw-ll_ucoco_384 whole-body SimCC) with
its own host code. This script feeds rtmlib (PyPI `rtmlib`, the maintained packaging of
DWPose's ONNX pipeline) a frame of the test media and graph outputs with the published
shapes, and records what rtmlib computes, so the Rust tests can hold scail's host code to it:

  OUT/frame.png             the frame (RGB), at a size Stage A runs pose detection on
  OUT/letterbox.png         rtmlib's YOLOX input: resized into 640x640, padded with 114 (BGR)
  OUT/yolox_output.f32      a [1, 8400, 85] YOLOX output (little-endian float32): zeros but
                            for planted anchors, some overlapping so NMS has work to do
  OUT/crop_<i>.png          rtmlib's 288x384 affine crop for person i (BGR)
  OUT/simcc_<i>.f32         simcc_x [1,133,576] then simcc_y [1,133,768] for person i
  OUT/expected.json         ratio; rtmlib's NMS detections (box, score, class); the persons
                            DWPose keeps (class 0, score > 0.3); per person the crop centre,
                            scale and rtmlib's keypoints

The keypoint confidence is not taken from rtmlib: rtmlib 0.0.16 averages the two SimCC
maxima, while DWPose (and SCAIL's extractor built on it) takes the smaller; the file records
both maxima so the test checks scail's rule.

Needs rtmlib, opencv-python, numpy, pillow, ffmpeg on PATH.
Usage: dwpose_reference.py OUT_DIR --media testdata/media
"""
import argparse
import io
import json
import os
import subprocess
import types

import cv2
import numpy as np
from PIL import Image
from rtmlib.tools.object_detection.post_processings import multiclass_nms
from rtmlib.tools.object_detection.yolox import YOLOX
from rtmlib.tools.pose_estimation.pre_processings import bbox_xyxy2cs, top_down_affine
from rtmlib.tools.pose_estimation.rtmpose import RTMPose

SEED = 20261206
NMS_THR, SCORE_THR, PERSON_THR = 0.45, 0.1, 0.3
DET_SIZE = (640, 640)
POSE_SIZE = (288, 384)  # (w, h) as rtmlib writes it
K = 133


def frame(media):
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", os.path.join(media, "dance_woman_16fps.mp4"), "-vf",
         "select=eq(n\\,24),scale=480:256:flags=area", "-vframes", "1", "-f", "image2pipe",
         "-vcodec", "png", "-"],
        check=True, capture_output=True,
    ).stdout
    return np.array(Image.open(io.BytesIO(raw)).convert("RGB"))


def yolox_output(rng):
    """Planted anchors: (level, gx, gy, dx, dy, log w, log h, objectness, class scores)."""
    out = np.zeros((1, 8400, 85), np.float32)
    strides = [8, 16, 32]
    offsets = [0, 80 * 80, 80 * 80 + 40 * 40]
    plants = [
        # two overlapping person boxes (NMS keeps the better one), one separate person
        (1, 14, 20, 0.3, 0.1, 2.2, 3.1, 0.95, {0: 0.9}),
        (1, 15, 20, -0.2, 0.4, 2.1, 3.0, 0.9, {0: 0.8}),
        (2, 4, 10, 0.5, 0.5, 1.4, 2.3, 0.85, {0: 0.7}),
        # a person too weak for DWPose's 0.3, strong enough for NMS's 0.1
        (0, 60, 30, 0.0, 0.0, 1.5, 2.0, 0.5, {0: 0.4}),
        # other classes, one of them on top of a person
        (1, 14, 21, 0.0, 0.0, 2.0, 3.0, 0.9, {16: 0.95}),
        (2, 12, 12, 0.1, 0.2, 1.0, 1.0, 0.8, {2: 0.6, 0: 0.2}),
        # below NMS's score threshold
        (0, 10, 10, 0.0, 0.0, 1.0, 1.0, 0.2, {0: 0.3}),
    ]
    for level, gx, gy, dx, dy, lw, lh, obj, cls in plants:
        n = 640 // strides[level]
        a = offsets[level] + gy * n + gx
        out[0, a, :4] = [dx, dy, lw, lh]
        out[0, a, 4] = obj
        for c, s in cls.items():
            out[0, a, 5 + c] = s
    # Low background person scores everywhere else: products stay under the 0.1 threshold
    # (other classes are left at zero, which keeps the file small in git).
    bg = out[0, :, 4] == 0
    out[0, bg, 4] = np.round(rng.uniform(0, 0.25, bg.sum()) * 64) / 64
    out[0, bg, 5] = np.round(rng.uniform(0, 0.35, bg.sum()) * 64) / 64
    return out


def simcc(rng):
    """Noise on a 1/8 grid (compressible) with one clear peak per keypoint; a few keypoints whose peak
    is negative on one axis (DWPose marks those -1), and a tie (argmax takes the first)."""
    x = np.round(rng.uniform(-0.2, 0.3, (1, K, 576)) * 8) / 8
    y = np.round(rng.uniform(-0.2, 0.3, (1, K, 768)) * 8) / 8
    for k in range(K):
        x[0, k, rng.integers(0, 576)] = 0.5 + rng.uniform(0, 0.5)
        y[0, k, rng.integers(0, 768)] = 0.5 + rng.uniform(0, 0.5)
    for k in (3, 40, 100):
        x[0, k] = -np.abs(x[0, k]) - 0.05
    tie = rng.integers(0, 570)
    y[0, 7, :] = 0.1
    y[0, 7, tie] = y[0, 7, tie + 5] = 0.9
    return x.astype(np.float32), y.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--media", default="testdata/media")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(SEED)

    rgb = frame(a.media)
    Image.fromarray(rgb).save(os.path.join(a.out, "frame.png"))
    bgr = np.ascontiguousarray(rgb[..., ::-1])

    # rtmlib's YOLOX host code, without a session (the graph output is ours).
    det = types.SimpleNamespace(model_input_size=DET_SIZE, nms_thr=NMS_THR, score_thr=SCORE_THR,
                                det_mode="multiclass")
    padded, ratio = YOLOX.preprocess(det, bgr)
    Image.fromarray(padded[..., ::-1]).save(os.path.join(a.out, "letterbox.png"))
    raw = yolox_output(rng)
    raw.tofile(os.path.join(a.out, "yolox_output.f32"))
    boxes, classes = YOLOX.postprocess(det, raw.copy(), ratio)
    # The same decode again for the scores rtmlib's postprocess does not return.
    o = raw.copy()[0]
    grids, strides = [], []
    for s in (8, 16, 32):
        n = 640 // s
        xv, yv = np.meshgrid(np.arange(n), np.arange(n))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((n * n, 1), s))
    g, st = np.concatenate(grids), np.concatenate(strides)
    o[:, :2] = (o[:, :2] + g) * st
    o[:, 2:4] = np.exp(o[:, 2:4]) * st
    xyxy = np.stack([o[:, 0] - o[:, 2] / 2, o[:, 1] - o[:, 3] / 2,
                     o[:, 0] + o[:, 2] / 2, o[:, 1] + o[:, 3] / 2], 1) / ratio
    dets, _ = multiclass_nms(xyxy, o[:, 4:5] * o[:, 5:], NMS_THR, SCORE_THR)
    assert np.allclose(dets[:, :4], boxes) and (dets[:, 5].astype(int) == classes).all()
    nms = [{"box": [float(v) for v in d[:4]], "score": float(d[4]), "class": int(d[5])} for d in dets]
    # DWPose's rule on rtmlib's detections: people scoring above 0.3, best first.
    people = sorted([d for d in nms if d["class"] == 0 and d["score"] > PERSON_THR],
                    key=lambda d: -d["score"])

    pose = types.SimpleNamespace(model_input_size=POSE_SIZE, mean=None, std=None)
    persons = []
    for i, p in enumerate(people):
        img, center, scale = RTMPose.preprocess(pose, bgr, p["box"])
        Image.fromarray(img.astype(np.uint8)[..., ::-1]).save(os.path.join(a.out, f"crop_{i}.png"))
        sx, sy = simcc(rng)
        with open(os.path.join(a.out, f"simcc_{i}.f32"), "wb") as f:
            f.write(sx.tobytes())
            f.write(sy.tobytes())
        kpts, _mean_scores = RTMPose.postprocess(pose, [sx, sy], center, scale)
        persons.append({
            "box": p["box"],
            "center": [float(v) for v in center],
            "scale": [float(v) for v in scale],
            "keypoints": [[float(v) for v in k] for k in kpts[0]],
            "max_x": [float(v) for v in sx[0].max(1)],
            "max_y": [float(v) for v in sy[0].max(1)],
        })
    expected = {
        "det_size": list(DET_SIZE), "pose_size": list(POSE_SIZE), "keypoints": K,
        "nms_iou": NMS_THR, "nms_score": SCORE_THR, "person_score": PERSON_THR,
        "ratio": float(ratio), "nms": nms, "persons": persons,
    }
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {a.out}: {len(nms)} NMS detections, {len(persons)} people")


if __name__ == "__main__":
    main()
