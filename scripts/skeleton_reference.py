#!/usr/bin/env python3
"""Pose-render reference for scail's Stage A: DWPose's OpenPose-style drawing, done with
OpenCV's own primitives, for keypoints this script makes up.

The drawing rules are DWPose's (the extractor SCAIL's pose driving uses): body limbs as
filled ellipses (`ellipse2Poly` + `fillConvexPoly`, half-width 4) in the 18 OpenPose colours,
the limb layer dimmed to 60% with truncation, joints as filled circles of radius 4, hand
edges as 2 px lines in HSV rainbow colours with blue joint circles of radius 4, face points
as white circles of radius 3. Points are normalised by the frame size and scaled back, as
DWPose does; hand and face points within 1% of the top or left edge are dropped; a point
scoring under 0.3 is not drawn (body: at most 0.3).

  OUT/people.json    frame size and 133 whole-body keypoints (x, y, score) per person
  OUT/render.png     the render (RGB)

Needs opencv-python, numpy, pillow. Usage: skeleton_reference.py OUT_DIR
"""
import argparse
import json
import math
import os

import cv2
import numpy as np
from PIL import Image

SEED = 20261206
W, H = 320, 240
THR = 0.3
EPS = 0.01
COLOURS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
           [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
           [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]]
# OpenPose-18 limbs (1-based joints); the first 17 are drawn.
LIMBS = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
         (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]
# OpenPose joint -> COCO-WholeBody keypoint (None: the neck, mid-shoulders).
OPENPOSE_FROM_COCO = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
              (18, 19), (19, 20)]


def hsv_full(h):
    """HSV (h, 1, 1) to RGB in [0, 1], matplotlib's sector formula (p = 0, q = 1 - f,
    t = 1 - (1 - f))."""
    i = int(h * 6.0)
    f = h * 6.0 - i
    q, t = 1.0 - f, 1.0 - (1.0 - f)
    return [(1, t, 0), (q, 1, 0), (0, 1, t), (0, q, 1), (t, 0, 1), (1, 0, q)][i % 6]


def person(rng, cx, s):
    """A standing figure around x = cx, scale s, with jitter; fractional coordinates."""
    body = [(0, -70), (-4, -74), (4, -74), (-9, -72), (9, -72), (-18, -50), (18, -50),
            (-28, -22), (28, -24), (-32, 4), (34, 2), (-11, 10), (11, 10), (-13, 48),
            (13, 46), (-14, 84), (15, 82), (-20, 90), (-10, 91), (-16, 88), (20, 88),
            (10, 90), (16, 87)]
    k = []
    for dx, dy in body:
        k.append([cx + s * dx + rng.uniform(-0.45, 0.45), 120 + s * dy + rng.uniform(-0.45, 0.45),
                  float(rng.uniform(0.5, 1.0))])
    for i in range(68):
        a = 2 * math.pi * i / 68
        k.append([cx + s * 8 * math.cos(a) + rng.uniform(-0.3, 0.3),
                  120 + s * (-70 + 9 * math.sin(a)) + rng.uniform(-0.3, 0.3), float(rng.uniform(0.35, 1))])
    for wrist in (9, 10):
        wx, wy = k[wrist][0], k[wrist][1]
        side = -1 if wrist == 9 else 1
        k.append([wx, wy, 0.9])
        for finger in range(5):
            for j in range(4):
                k.append([wx + side * s * (3 + 3 * j) + rng.uniform(-0.4, 0.4),
                          wy + s * (finger * 2.5 - 5 + j * 1.5) + rng.uniform(-0.4, 0.4),
                          float(rng.uniform(0.4, 1))])
    return k


def draw(people):
    """DWPose's data flow: float32 keypoints, normalised by the frame size, scaled back at
    drawing time, truncated with int()."""
    canvas = np.zeros((H, W, 3), np.uint8)
    kps = np.array(people, np.float32)  # [n, 133, 3]
    xy = kps[:, :, :2].copy()
    xy[..., 0] /= np.float32(W)
    xy[..., 1] /= np.float32(H)
    score = kps[:, :, 2]
    bodies = []
    for n in range(len(people)):
        neck = (kps[n, 5, :2] + kps[n, 6, :2]) / np.float32(2)
        neck_ok = score[n, 5] > THR and score[n, 6] > THR
        pts = []
        for c in OPENPOSE_FROM_COCO:
            if c is None:
                pts.append((neck[0] / np.float32(W), neck[1] / np.float32(H)) if neck_ok else None)
            else:
                pts.append((xy[n, c, 0], xy[n, c, 1]) if score[n, c] > THR else None)
        bodies.append(pts)
    for i, (a, b) in enumerate(LIMBS):
        for pts in bodies:
            pa, pb = pts[a - 1], pts[b - 1]
            if pa is None or pb is None:
                continue
            ys = np.array([pa[1], pb[1]], np.float32) * float(H)
            xs = np.array([pa[0], pb[0]], np.float32) * float(W)
            mx, my = np.mean(xs), np.mean(ys)
            length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            poly = cv2.ellipse2Poly((int(mx), int(my)), (int(length / 2), 4), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, COLOURS[i])
    canvas = (canvas * 0.6).astype(np.uint8)
    for j in range(18):
        for pts in bodies:
            if pts[j] is not None:
                x, y = pts[j]
                cv2.circle(canvas, (int(x * float(W)), int(y * float(H))), 4, COLOURS[j], thickness=-1)
    vis = np.where(score[..., None] >= THR, xy, np.float32(-1))
    for n in range(len(people)):
        for hand in (range(91, 112), range(112, 133)):
            h = [vis[n, i] for i in hand]
            for e, (a, b) in enumerate(HAND_EDGES):
                (x1, y1), (x2, y2) = h[a], h[b]
                if x1 > EPS and y1 > EPS and x2 > EPS and y2 > EPS:
                    colour = [v * 255 for v in hsv_full(e / float(len(HAND_EDGES)))]
                    cv2.line(canvas, (int(x1 * W), int(y1 * H)), (int(x2 * W), int(y2 * H)), colour,
                             thickness=2)
            for x, y in h:
                if x > EPS and y > EPS:
                    cv2.circle(canvas, (int(x * W), int(y * H)), 4, (0, 0, 255), thickness=-1)
    for n in range(len(people)):
        for i in range(23, 91):
            x, y = vis[n, i]
            if x > EPS and y > EPS:
                cv2.circle(canvas, (int(x * W), int(y * H)), 3, (255, 255, 255), thickness=-1)
    return canvas


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    people = [person(rng, 80.3, 1.0), person(rng, 215.6, 1.15)]
    # A weak knee and ankle (limbs vanish), a weak hand point, a face point at the left edge.
    people[0][14][2] = 0.2
    people[0][16][2] = 0.3
    people[1][100][2] = 0.1
    people[1][30][0] = 1.5
    # float32 values, so both sides start from the same numbers.
    people = np.array(people, np.float32).astype(np.float64).tolist()
    canvas = draw(people)
    Image.fromarray(canvas).save(os.path.join(a.out, "render.png"))
    with open(os.path.join(a.out, "people.json"), "w") as f:
        json.dump({"width": W, "height": H, "people": people}, f)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
