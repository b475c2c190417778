// The official JS client against `scail serve --lora-dir`: `preset: "fast"` with a LoRA from
// the server's folder comes back as a real video, and a LoRA the server does not have is a
// ValidationError at `loras`. Run by crates/scail/tests/served_loras.rs with SCAIL_BASE,
// SCAIL_KEY, SCAIL_MEDIA (a folder URL serving testdata/media) and SCAIL_LORA (a file name in
// the server's LoRA folder).
import assert from "node:assert/strict";
import { createFalClient, ValidationError } from "@fal-ai/client";

const { SCAIL_BASE: BASE, SCAIL_KEY: KEY, SCAIL_MEDIA: MEDIA, SCAIL_LORA: LORA } = process.env;
const fal = createFalClient({
  credentials: KEY,
  requestMiddleware: async (r) => ({
    ...r,
    url: r.url.replace(/^https:\/\/queue\.fal\.run\//, `${BASE}/queue/`).replace(/^https:\/\/rest\.fal\.ai\//, `${BASE}/rest/`),
  }),
});
const input = {
  prompt: "a woman dancing on the shore",
  image_url: `${MEDIA}/ref_photo_woman_shore.jpg`,
  video_url: `${MEDIA}/dance_woman_16fps.mp4`,
  preset: "fast",
  seed: 9,
};

// A name that is not in the folder: refused at submit, the field named.
await assert.rejects(
  fal.queue.submit("fal-ai/scail-2", { input: { ...input, loras: [{ name: "nope.safetensors" }] } }),
  (e) => {
    assert.ok(e instanceof ValidationError, String(e));
    const f = e.fieldErrors.find((x) => x.loc.includes("loras"));
    assert.ok(f && /nope\.safetensors/.test(f.msg) && f.msg.includes(LORA), JSON.stringify(e.body));
    return true;
  },
);
// A path is never a LoRA name.
await assert.rejects(
  fal.queue.submit("fal-ai/scail-2", { input: { ...input, loras: [{ name: "../keys" }] } }),
  (e) => e instanceof ValidationError && e.fieldErrors.some((x) => x.loc.includes("loras")),
);

const res = await fal.subscribe("fal-ai/scail-2", {
  input: { ...input, loras: [{ name: LORA, scale: 1.0 }] },
  logs: true,
  pollInterval: 200,
});
const out = res.data;
assert.equal(out.seed, 9);
const b = Buffer.from(await (await fetch(out.video.url)).arrayBuffer());
assert.equal(b.length, out.video.file_size);
assert.equal(b.subarray(4, 8).toString(), "ftyp");
console.log(JSON.stringify({ request_id: res.requestId, ...out }));
