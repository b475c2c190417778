// The official @fal-ai/client against a live scail server. Run by
// crates/scail-server/tests/conformance.rs, which starts the server and passes:
// SCAIL_BASE, SCAIL_KEY (owner alice), SCAIL_KEY_OTHER (owner bob), SCAIL_MEDIA (test media).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import crypto from "node:crypto";
import { createFalClient, ApiError, ValidationError } from "@fal-ai/client";

const BASE = process.env.SCAIL_BASE;
const KEY = process.env.SCAIL_KEY;
const OTHER = process.env.SCAIL_KEY_OTHER;
const MEDIA = process.env.SCAIL_MEDIA;
const EP = "fal-ai/scail-2";
assert.ok(BASE && KEY && OTHER && MEDIA, "run through the Rust conformance harness");

const rewrite = (url) =>
  url
    .replace(/^https:\/\/queue\.fal\.run\//, `${BASE}/queue/`)
    .replace(/^https:\/\/fal\.run\//, `${BASE}/run/`)
    .replace(/^https:\/\/rest\.fal\.ai\//, `${BASE}/rest/`);
const viaMiddleware = (key = KEY) =>
  createFalClient({ credentials: key, requestMiddleware: async (r) => ({ ...r, url: rewrite(r.url) }) });
const viaProxy = (key = KEY) =>
  createFalClient({ credentials: key, proxyUrl: { url: `${BASE}/proxy`, when: "always" } });
const MODES = { middleware: viaMiddleware, proxy: viaProxy };

const bytes = async (url) => Buffer.from(await (await fetch(url)).arrayBuffer());
const input = (steps = 3, extra = {}) => ({
  prompt: "a person dancing",
  image_url: `${MEDIA}/ref.png`,
  video_url: `${MEDIA}/drive.mp4`,
  num_inference_steps: steps,
  seed: 11,
  ...extra,
});

async function checkVideo(data) {
  assert.equal(data.video.content_type, "video/mp4");
  const b = await bytes(data.video.url);
  assert.equal(b.length, data.video.file_size);
  assert.equal(b.subarray(4, 8).toString(), "ftyp");
}

for (const [mode, make] of Object.entries(MODES)) {
  test(`${mode}: subscribe with logs and onQueueUpdate`, async () => {
    const fal = make();
    const updates = [];
    const res = await fal.subscribe(EP, {
      input: input(6),
      logs: true,
      pollInterval: 100,
      onQueueUpdate: (u) => updates.push(u),
    });
    assert.ok(res.requestId);
    assert.equal(res.data.seed, 11);
    await checkVideo(res.data);
    assert.equal(updates.at(-1).status, "COMPLETED");
    const withLogs = updates.filter((u) => Array.isArray(u.logs) && u.logs.length > 0);
    assert.ok(withLogs.length > 0, "logs arrive through onQueueUpdate");
    assert.ok(withLogs.at(-1).logs.some((l) => l.message.startsWith("sampling:")));
  });

  test(`${mode}: submit, status, result with priority and timeout`, async () => {
    const fal = make();
    const { request_id } = await fal.queue.submit(EP, { input: input(2), priority: "low", startTimeout: 60 });
    assert.ok(request_id);
    let s;
    for (let i = 0; i < 200; i++) {
      s = await fal.queue.status(EP, { requestId: request_id, logs: true });
      if (s.status === "COMPLETED") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(s.status, "COMPLETED");
    assert.ok(Array.isArray(s.logs));
    assert.equal(typeof s.metrics.inference_time, "number");
    const r = await fal.queue.result(EP, { requestId: request_id });
    assert.equal(r.requestId, request_id);
    await checkVideo(r.data);
  });

  test(`${mode}: sync run`, async () => {
    const r = await make().run(EP, { input: input(1) });
    await checkVideo(r.data);
  });
}

test("streaming status mode", async () => {
  const fal = viaMiddleware();
  const updates = [];
  const res = await fal.subscribe(EP, { input: input(5), logs: true, mode: "streaming", onQueueUpdate: (u) => updates.push(u) });
  await checkVideo(res.data);
  assert.equal(updates.at(-1).status, "COMPLETED");
});

test("cancel in all four states", async () => {
  const fal = viaMiddleware();
  const running = (await fal.queue.submit(EP, { input: input(100) })).request_id;
  const queued = (await fal.queue.submit(EP, { input: input(1) })).request_id;
  for (let i = 0; i < 200; i++) {
    const s = await fal.queue.status(EP, { requestId: running });
    if (s.status === "IN_PROGRESS") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const q = await fal.queue.status(EP, { requestId: queued });
  assert.equal(q.status, "IN_QUEUE");
  assert.equal(q.queue_position, 0);
  await fal.queue.cancel(EP, { requestId: queued });
  await fal.queue.cancel(EP, { requestId: running });
  for (const id of [queued, running]) {
    let s;
    for (let i = 0; i < 100; i++) {
      s = await fal.queue.status(EP, { requestId: id });
      if (s.status === "COMPLETED") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(s.status, "COMPLETED");
    assert.equal(s.error_type, "request_cancelled");
  }
  await assert.rejects(fal.queue.cancel(EP, { requestId: running }), (e) => e instanceof ApiError && e.status === 400 && e.body.status === "ALREADY_COMPLETED");
  await assert.rejects(fal.queue.cancel(EP, { requestId: "00000000-0000-0000-0000-000000000000" }), (e) => e instanceof ApiError && e.status === 404);
});

test("storage upload (small) then use the URL", async () => {
  const fal = viaMiddleware();
  const mp4 = await bytes(`${MEDIA}/drive.mp4`);
  const url = await fal.storage.upload(new Blob([mp4], { type: "video/mp4" }));
  assert.deepEqual(await bytes(url), mp4);
  const res = await fal.subscribe(EP, { input: input(1, { video_url: url }) });
  await checkVideo(res.data);
});

test("storage upload (multipart, over 90 MB)", async () => {
  const fal = viaMiddleware();
  const big = crypto.randomBytes(91 * 1024 * 1024);
  const url = await fal.storage.upload(new Blob([big], { type: "application/octet-stream" }));
  const back = await bytes(url);
  assert.equal(back.length, big.length);
  assert.equal(crypto.createHash("sha256").update(back).digest("hex"), crypto.createHash("sha256").update(big).digest("hex"));
});

test("Blob inputs are uploaded automatically; data URIs pass through", async () => {
  const fal = viaProxy();
  const png = await bytes(`${MEDIA}/ref.png`);
  const mp4 = await bytes(`${MEDIA}/drive.mp4`);
  const res = await fal.subscribe(EP, {
    input: input(1, {
      image_url: `data:image/png;base64,${png.toString("base64")}`,
      video_url: new Blob([mp4], { type: "video/mp4" }),
    }),
  });
  await checkVideo(res.data);
});

test("webhook: signed, verified against the JWKS, retried after a 500", async () => {
  const got = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = got.length === 1 ? 500 : 200;
      res.end();
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${srv.address().port}/hook`;
  try {
    const fal = viaMiddleware();
    const { request_id } = await fal.queue.submit(EP, { input: input(1), webhookUrl: hook });
    for (let i = 0; i < 300 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 2, "delivered again after the 500");
    const jwks = await (await fetch(`${BASE}/.well-known/jwks.json`)).json();
    const key = crypto.createPublicKey({ key: jwks.keys[0], format: "jwk" });
    for (const { headers, body } of got) {
      assert.equal(headers["x-fal-webhook-request-id"], request_id);
      const ts = Number(headers["x-fal-webhook-timestamp"]);
      assert.ok(Math.abs(Date.now() / 1000 - ts) < 300);
      const msg = [request_id, headers["x-fal-webhook-user-id"], headers["x-fal-webhook-timestamp"],
        crypto.createHash("sha256").update(body).digest("hex")].join("\n");
      assert.ok(crypto.verify(null, Buffer.from(msg), key, Buffer.from(headers["x-fal-webhook-signature"], "hex")));
      const payload = JSON.parse(body.toString());
      assert.equal(payload.status, "OK");
      assert.equal(payload.payload.seed, 11);
    }
  } finally {
    srv.close();
  }
});

test("wrong key 401, another owner's request 404", async () => {
  await assert.rejects(viaMiddleware("wrong").queue.submit(EP, { input: input(1) }), (e) => e instanceof ApiError && e.status === 401);
  const { request_id } = await viaMiddleware().queue.submit(EP, { input: input(1) });
  await assert.rejects(viaMiddleware(OTHER).queue.status(EP, { requestId: request_id }), (e) => e instanceof ApiError && e.status === 404);
  await assert.rejects(viaMiddleware(OTHER).queue.result(EP, { requestId: request_id }), (e) => e instanceof ApiError && e.status === 404);
});

test("invalid input: ValidationError with the field's loc", async () => {
  for (const make of Object.values(MODES)) {
    await assert.rejects(make().queue.submit(EP, { input: input(0, { mode: "dance" }) }), (e) => {
      assert.ok(e instanceof ValidationError);
      assert.equal(e.status, 422);
      assert.equal(e.getFieldErrors("num_inference_steps").length, 1);
      assert.deepEqual(e.getFieldErrors("mode")[0].loc, ["body", "mode"]);
      return true;
    });
  }
});
