// End-to-end check of the scail web playground in a real browser (Debian's chromium driven by
// playwright-core; no browser download). The server under test runs in demo mode.
//
//   SCAIL_URL=http://127.0.0.1:8790 SCAIL_KEY=k-test \
//   SCAIL_IMAGE=testdata/media/ref_photo_woman_shore.jpg SCAIL_VIDEO=/tmp/pg-drive.mp4 \
//   SCAIL_EXPECT_DURATION=2.0 SCAIL_SCREENSHOT_DIR=/tmp/pg-shots node tests/browser/playground.mjs
//
// Optional: CHROMIUM (default /usr/bin/chromium), SCAIL_RUN_TIMEOUT_S (default 240).
// Prints one line per check; exits 1 on the first failure (with playground-failure.png).

import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.log(`FAIL setup: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

const BASE = need('SCAIL_URL').replace(/\/+$/, '');
const KEY = need('SCAIL_KEY');
const IMAGE = path.resolve(need('SCAIL_IMAGE'));
const VIDEO = path.resolve(need('SCAIL_VIDEO'));
const EXPECT = Number(need('SCAIL_EXPECT_DURATION'));
const SHOTS = path.resolve(need('SCAIL_SCREENSHOT_DIR'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const RUN_TIMEOUT_MS = Number(process.env.SCAIL_RUN_TIMEOUT_S || 240) * 1000;
const TOLERANCE_S = 0.25;
const SUBMIT_PATH = '/queue/fal-ai/scail-2';
// The LoRA `scail serve --demo` offers (crates/scail/src/demo.rs).
const DEMO_LORA = 'demo-lora.safetensors';

class CheckFailed extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg);
}
function pass(name, detail = '') {
  console.log(`PASS ${name}${detail ? `: ${detail}` : ''}`);
}

const isSubmit = (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === SUBMIT_PATH;

async function getJson(p) {
  const res = await fetch(BASE + p);
  check(res.ok, `GET ${p} answered HTTP ${res.status}`);
  return res.json();
}

async function visibleText(page, sel) {
  const loc = page.locator(sel);
  return (await loc.isVisible()) ? (await loc.innerText()).trim() : '';
}

/** Waits for an upload into a file field to finish: its URL box gets the stored file's URL. */
async function waitUploaded(page, field) {
  await page.waitForFunction((f) => {
    const u = document.querySelector(`#field-${f}`)?.value || '';
    const err = document.querySelector(`[data-field="${f}"] .field-error`);
    return /^https?:\/\/.+/.test(u) || (err && !err.hidden);
  }, field, { timeout: 30_000 });
  const err = await visibleText(page, `[data-field="${field}"] .field-error`);
  check(!err, `upload of ${field} failed: ${err}`);
  const url = await page.inputValue(`#field-${field}`);
  const bar = await page.$eval(`#upload-progress-${field}`, (b) => ({ value: b.value, hidden: b.hidden }));
  check(!bar.hidden && bar.value === 1, `the upload progress bar of ${field} did not reach the end (${JSON.stringify(bar)})`);
  return url;
}

async function main(page, consoleProblems) {
  const health = await getJson('/health');
  const openapi = await getJson('/openapi.json');
  const schema = openapi.components.schemas.ScailInput;

  // 1. The page builds its form from openapi.json and shows the demo banner.
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#form[data-ready]', { timeout: 15_000 });
  const missing = [];
  for (const n of Object.keys(schema.properties)) {
    if (!(await page.locator(`[data-field="${n}"]`).count())) missing.push(n);
  }
  check(!missing.length, `no form row for: ${missing.join(', ')}`);
  for (const n of Object.keys(schema.properties).filter((x) => x.endsWith('_url'))) {
    check(await page.locator(`input[type=file]#file-${n}`).count() === 1, `no <input type=file id=file-${n}>`);
  }
  pass('form', `${Object.keys(schema.properties).length} fields built from /openapi.json`);

  check(String(health.weights).startsWith('demo:'), `the server is not in demo mode (weights: ${health.weights})`);
  const noteBody = String(health.weights).replace(/^demo:\s*/, '').replace(/`/g, '');
  const banner = await visibleText(page, '#banner');
  check(banner.includes(noteBody), `#banner should show the demo note "${noteBody}", shows "${banner}"`);
  pass('demo banner', banner);

  // 2. A wrong key: the refusal is shown next to the key box.
  await page.fill('#api-key', `${KEY}-wrong`);
  await page.fill('#field-prompt', 'a person waving');
  const refused = page.waitForResponse(isSubmit);
  await page.click('#submit');
  check((await refused).status() === 401, 'a submit with a wrong key was not answered 401');
  await page.waitForSelector('#auth-error:not([hidden])', { timeout: 5_000 });
  const authText = await visibleText(page, '#auth-error');
  check(/refused the API key/i.test(authText) && /invalid api key/i.test(authText),
    `#auth-error should say the key was refused, says "${authText}"`);
  pass('wrong key', authText);
  await page.fill('#api-key', KEY);
  check(!(await page.locator('#auth-error').isVisible()), '#auth-error stays visible after the key changed');
  check(await page.evaluate(() => localStorage.getItem('scail.apiKey')) === KEY, 'the key was not kept in localStorage');

  // Uploads: one synthetic drop on the image's drop zone, then the real file inputs.
  const imageBytes = readFileSync(IMAGE).toString('base64');
  await page.evaluate(async ([b64, name]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: 'image/jpeg' }));
    const zone = document.querySelector('[data-field="image_url"] .dropzone');
    zone.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: dt }));
    zone.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: dt }));
  }, [imageBytes, path.basename(IMAGE)]);
  const dropped = await waitUploaded(page, 'image_url');
  check(await page.locator('[data-field="image_url"] .preview img').count() === 1, 'no image preview after the drop');
  pass('drop upload', dropped);

  await page.setInputFiles('#file-image_url', IMAGE);
  await page.setInputFiles('#file-video_url', VIDEO);
  const imageUrl = await waitUploaded(page, 'image_url');
  const videoUrl = await waitUploaded(page, 'video_url');
  check(imageUrl !== dropped, 'choosing a file again did not upload it again');
  check(await page.locator('[data-field="video_url"] .preview video').count() === 1, 'no video preview');
  pass('file inputs', `${imageUrl} ${videoUrl}`);

  // 3. A combination the server refuses: its 422 message appears at the field.
  await page.selectOption('#field-driving_type', 'pose');
  await page.selectOption('#field-subject_type', 'animal');
  const r422 = page.waitForResponse(isSubmit);
  await page.click('#submit');
  const res422 = await r422;
  check(res422.status() === 422, `pose + animal was answered ${res422.status()}, expected 422`);
  const detail = (await res422.json()).detail || [];
  const serverMsg = detail.find((d) => (d.loc || []).includes('driving_type'))?.msg;
  check(serverMsg, `the 422 has no message at driving_type: ${JSON.stringify(detail)}`);
  const fieldErr = page.locator('[data-field="driving_type"] .field-error');
  await fieldErr.waitFor({ state: 'visible', timeout: 5_000 });
  const shown = (await fieldErr.innerText()).trim();
  check(shown.includes(serverMsg), `the driving_type row shows "${shown}", the server said "${serverMsg}"`);
  await page.screenshot({ path: path.join(SHOTS, 'playground-422.png'), fullPage: true });
  pass('422 at its field', shown);

  // 4. The real run: a fast request, progress, a playable result of the expected length.
  await page.selectOption('#field-driving_type', 'end_to_end');
  await page.selectOption('#field-subject_type', String(schema.properties.subject_type.default));
  await page.fill('#field-num_inference_steps', '2');
  const follows = await page.waitForFunction(() => /"num_inference_steps": 2\b/.test(document.querySelector('#snippet').textContent),
    null, { timeout: 5_000 }).then(() => true, () => false);
  check(follows, 'the code snippet does not follow the form (num_inference_steps)');
  // The fast preset with the demo LoRA, picked from the names /openapi.json lists.
  const loraNames = schema.properties.loras?.items?.properties?.name?.enum || [];
  check(loraNames.includes(DEMO_LORA), `/openapi.json lists no ${DEMO_LORA}: ${JSON.stringify(loraNames)}`);
  await page.click('#add-loras');
  await page.selectOption('#field-loras-0-name', DEMO_LORA);
  await page.selectOption('#field-preset', 'fast');
  // Untouched fields show the preset's recipe (from x-recipes) and are left to the server.
  const fast = schema.properties.preset['x-recipes'].fast;
  check(await page.inputValue('#field-guidance_scale') === String(fast.guidance_scale)
    && await page.inputValue('#field-sampler') === fast.sampler
    && await page.inputValue('#field-shift') === String(fast.shift),
  `the form does not show the fast recipe ${JSON.stringify(fast)}`);
  const snippet = await page.waitForFunction((l) => {
    const t = document.querySelector('#snippet').textContent;
    return t.includes(l) && /"preset": "fast"/.test(t) ? t : null;
  }, DEMO_LORA, { timeout: 5_000 }).then((h) => h.jsonValue(), () => '');
  check(snippet, 'the code snippet does not carry the preset and the LoRA');
  check(!/"guidance_scale"|"sampler"|"shift"/.test(snippet), `the preset's values are sent as explicit fields:\n${snippet}`);
  check(snippet.includes(`${BASE}${SUBMIT_PATH}`), 'the curl snippet lacks the submit URL');
  await page.evaluate(() => {
    window.__seen = new Set();
    const q = (s) => document.querySelector(s);
    window.__spy = setInterval(() => {
      const run = q('#run');
      if (run.hidden) return;
      const bar = q('#progress');
      const pos = q('#queue-position');
      window.__seen.add(JSON.stringify({
        state: run.dataset.state,
        progress: bar.hasAttribute('value') ? `${bar.value}/${bar.max}` : 'indeterminate',
        queue: pos.hidden ? null : pos.textContent,
        steps: q('#progress-steps').textContent,
      }));
    }, 40);
  });
  const submitted = page.waitForResponse(isSubmit);
  await page.click('#submit');
  const sres = await submitted;
  check(sres.status() === 200, `the fast request was answered ${sres.status()}: ${await sres.text()}`);
  const requestId = (await sres.json()).request_id;
  pass('submit', `request ${requestId}`);

  const t0 = Date.now();
  await page.waitForFunction(() => !document.querySelector('#result').hidden || !document.querySelector('#run-error').hidden,
    null, { timeout: RUN_TIMEOUT_MS, polling: 200 });
  const runErr = await visibleText(page, '#run-error');
  check(!runErr, `the job failed: ${runErr}`);
  const seen = (await page.evaluate(() => { clearInterval(window.__spy); return [...window.__seen]; })).map((s) => JSON.parse(s));
  const live = seen.filter((s) => s.state === 'IN_QUEUE' || s.state === 'IN_PROGRESS');
  check(live.length > 0, `no queue or progress state was shown while the job ran (saw ${JSON.stringify(seen)})`);
  const stepped = seen.filter((s) => /^step \d+\/\d+$/.test(s.steps));
  pass('progress', `${live.length} live states (${[...new Set(live.map((s) => s.state))].join(', ')}), ` +
    `${stepped.length} with steps; finished in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const log = await page.textContent('#log');
  check(log.trim().length > 0, 'the log stayed empty');
  check(log.includes('reloading the DiT with LoRAs') && log.includes(DEMO_LORA),
    `the log does not show the LoRA being fused:\n${log}`);
  check(/sampling: 2 steps, guidance 1, shift 5, euler/.test(log), `the log does not show the fast recipe (2 steps as set):\n${log}`);
  pass('preset and LoRA', 'fast recipe (euler, CFG 1, shift 5) with demo-lora.safetensors fused, steps as set');

  await page.waitForFunction(() => /^\d+\.\d\d s$/.test(document.querySelector('#result-duration').textContent.trim()),
    null, { timeout: 30_000 });
  const durText = (await page.textContent('#result-duration')).trim();
  const media = await page.evaluate(async () => {
    const v = document.querySelector('#result-video');
    let canplay = v.readyState >= 2;
    v.addEventListener('canplay', () => { canplay = true; }, { once: true });
    v.muted = true;
    let playError = null;
    try { await v.play(); } catch (e) { playError = String(e); }
    const start = Date.now();
    while (!(canplay && v.readyState >= 2) && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    return { duration: v.duration, readyState: v.readyState, canplay, playError, currentTime: v.currentTime,
      width: v.videoWidth, height: v.videoHeight, src: v.currentSrc };
  });
  check(Math.abs(media.duration - EXPECT) <= TOLERANCE_S,
    `the result lasts ${media.duration} s, expected ${EXPECT} ± ${TOLERANCE_S} s`);
  check(Math.abs(parseFloat(durText) - media.duration) < 0.01, `#result-duration says "${durText}", the video ${media.duration}`);
  check(!media.playError, `play() failed: ${media.playError}`);
  check(media.canplay && media.readyState >= 2, `the video cannot play (readyState ${media.readyState})`);
  pass('result video', `${durText} (expected ${EXPECT}), ${media.width}x${media.height}, readyState ${media.readyState}, ` +
    `played to ${media.currentTime.toFixed(2)} s`);
  const seed = (await page.textContent('#result-seed')).trim();
  check(/^\d+$/.test(seed), `#result-seed shows "${seed}"`);
  const href = await page.getAttribute('#result-download', 'href');
  check(href && href === media.src, 'the download link does not point at the video');
  pass('result facts', `seed ${seed}, download ${href}`);

  await page.evaluate(() => { const v = document.querySelector('#result-video'); v.pause(); v.currentTime = 0.5; });
  await page.screenshot({ path: path.join(SHOTS, 'playground-result.png'), fullPage: true });
  check(!consoleProblems.length, `the page logged problems: ${consoleProblems.join(' | ')}`);
  pass('console', 'no page errors, CSP violations or unexpected failed requests');
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
});
let code = 0;
let page;
try {
  mkdirSync(SHOTS, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  page = await context.newPage();
  const consoleProblems = [];
  page.on('pageerror', (e) => consoleProblems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // Failed requests are judged by URL below (the wrong-key and 422 checks expect some).
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleProblems.push(m.text());
  });
  page.on('response', (r) => {
    const expected = isSubmit(r) && [401, 422].includes(r.status());
    if (r.status() >= 400 && !expected) consoleProblems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => consoleProblems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  await main(page, consoleProblems);
  console.log('OK all playground checks passed');
} catch (e) {
  code = 1;
  console.log(`FAIL ${e instanceof CheckFailed ? e.message : e.stack || e}`);
  if (page) {
    await page.screenshot({ path: path.join(SHOTS, 'playground-failure.png'), fullPage: true }).catch(() => {});
    console.log(`     screenshot: ${path.join(SHOTS, 'playground-failure.png')}`);
  }
} finally {
  await browser.close();
}
process.exit(code);
