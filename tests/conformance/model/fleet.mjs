// The official JS client against a fleet (crates/scail/tests/fleet.rs): SCAIL_JOBS jobs submitted
// through a load balancer in front of the API nodes, while the harness kills workers and an API
// node. Every request is retried on a dropped connection (a node died under it), as a client of a
// fleet does. Prints one JSON line: the request ids and what each result held.
// Env: SCAIL_BASE (the balancer), SCAIL_KEY, SCAIL_MEDIA (serving ref.jpg and drive.mp4),
// SCAIL_JOBS.
import assert from "node:assert/strict";
import { createFalClient } from "@fal-ai/client";

const { SCAIL_BASE: BASE, SCAIL_KEY: KEY, SCAIL_MEDIA: MEDIA } = process.env;
const JOBS = Number(process.env.SCAIL_JOBS || 30);
const EP = "fal-ai/scail-2";
const fal = createFalClient({
  credentials: KEY,
  requestMiddleware: async (r) => ({
    ...r,
    url: r.url.replace(/^https:\/\/queue\.fal\.run\//, `${BASE}/queue/`).replace(/^https:\/\/rest\.fal\.ai\//, `${BASE}/rest/`),
  }),
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Retries what failed for want of a node (connection refused or reset, 502 from the balancer);
// anything the server answered is returned or thrown as it is.
async function retrying(what, f) {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      const transient = e?.status === 502 || e?.status === 503 || /fetch failed|ECONNRESET|ECONNREFUSED|socket/i.test(String(e?.cause ?? e));
      if (!transient || i > 60) throw e;
      await sleep(250);
    }
  }
}

const ids = [];
for (let n = 0; n < JOBS; n++) {
  const { request_id } = await retrying("submit", () =>
    fal.queue.submit(EP, {
      input: {
        prompt: "a woman dancing on the shore",
        image_url: `${MEDIA}/ref.jpg`,
        video_url: `${MEDIA}/drive.mp4`,
        preset: "fast",
        seed: 100 + n,
      },
    }),
  );
  ids.push(request_id);
}
console.log(`SUBMITTED ${ids.length}`);

const results = {};
const pending = new Set(ids);
const deadline = Date.now() + 15 * 60 * 1000;
while (pending.size > 0) {
  assert.ok(Date.now() < deadline, `jobs still unfinished: ${[...pending].join(", ")}`);
  for (const id of [...pending]) {
    const s = await retrying("status", () => fal.queue.status(EP, { requestId: id }));
    if (s.status !== "COMPLETED") continue;
    const r = await retrying("result", () => fal.queue.result(EP, { requestId: id }));
    const v = r.data.video;
    const bytes = await retrying("download", async () => {
      const res = await fetch(v.url);
      if (res.status >= 500) throw Object.assign(new Error(`download ${res.status}`), { status: res.status });
      assert.equal(res.status, 200, `${id}: ${v.url}`);
      return Buffer.from(await res.arrayBuffer());
    });
    assert.equal(bytes.length, v.file_size, id);
    assert.equal(bytes.subarray(4, 8).toString(), "ftyp", id);
    results[id] = { seed: r.data.seed, size: v.file_size, url: v.url };
    pending.delete(id);
  }
  await sleep(300);
}
console.log(JSON.stringify({ ids, results }));
