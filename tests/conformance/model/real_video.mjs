// The official JS client against `scail serve --weights <tiny random weights>`: a request from
// real media must come back as a real video. Run by crates/scail/tests/cli.rs with SCAIL_BASE,
// SCAIL_KEY, SCAIL_MEDIA (a folder URL serving testdata/media).
import assert from "node:assert/strict";
import { createFalClient } from "@fal-ai/client";

const { SCAIL_BASE: BASE, SCAIL_KEY: KEY, SCAIL_MEDIA: MEDIA } = process.env;
const fal = createFalClient({
  credentials: KEY,
  requestMiddleware: async (r) => ({
    ...r,
    url: r.url.replace(/^https:\/\/queue\.fal\.run\//, `${BASE}/queue/`).replace(/^https:\/\/rest\.fal\.ai\//, `${BASE}/rest/`),
  }),
});
const ref = Buffer.from(await (await fetch(`${MEDIA}/ref_photo_woman_shore.jpg`)).arrayBuffer());
const res = await fal.subscribe("fal-ai/scail-2", {
  input: {
    prompt: "a woman dancing on the shore",
    image_url: new Blob([ref], { type: "image/jpeg" }),
    video_url: `${MEDIA}/dance_woman_16fps.mp4`,
    num_inference_steps: 2,
    seed: 5,
    output_preprocessing: true,
  },
  logs: true,
  pollInterval: 200,
});
const out = res.data;
assert.equal(out.seed, 5);
for (const f of [out.video, out.preprocessing_video, out.preprocessing_mask_video]) {
  assert.ok(f && f.url, JSON.stringify(out));
  const b = Buffer.from(await (await fetch(f.url)).arrayBuffer());
  assert.equal(b.length, f.file_size);
  assert.equal(b.subarray(4, 8).toString(), "ftyp");
}
// scail's extension: the masks lossless, Matroska (EBML magic).
const mkv = out.preprocessing_mask_video_lossless;
assert.equal(mkv.content_type, "video/x-matroska", JSON.stringify(out));
const mb = Buffer.from(await (await fetch(mkv.url)).arrayBuffer());
assert.equal(mb.length, mkv.file_size);
assert.equal(mb.subarray(0, 4).toString("hex"), "1a45dfa3");
console.log(JSON.stringify(out));
