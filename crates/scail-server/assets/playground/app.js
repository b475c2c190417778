// scail playground: builds the request form from /openapi.json and drives the same public API
// the official fal clients use (storage upload, queue submit, status polling, result, cancel).
// No framework, no build step; everything comes from this server (CSP default-src 'self').

import {
  $, el, richText, show, setError, fmtBytes, detailText, fields, buildForm, fieldError, clearErrors, collect,
} from './form.js';

const ENDPOINT = 'fal-ai/scail-2';
const KEY_STORE = 'scail.apiKey';
const POLL_MS = 500;

const S = {
  key: '',
  job: null, // {id, started, timer, cancelled}
  lang: 'curl',
};

// ---------------------------------------------------------------- API calls

class ApiError extends Error {
  constructor(status, data, message) { super(message); this.status = status; this.data = data; }
}

function authFailed(detail) {
  setError($('#auth-error'), `The server refused the API key: ${detail || 'unauthorized'}`);
  $('#api-key').classList.add('invalid');
}
function authOk() {
  setError($('#auth-error'), '');
  $('#api-key').classList.remove('invalid');
}

/** An authenticated JSON call; throws ApiError with the parsed body on any non-2xx answer. */
async function api(method, path, body) {
  if (!S.key) {
    setError($('#auth-error'), 'Enter an API key first: the key scail serve printed.');
    $('#api-key').focus();
    const e = new ApiError(0, null, 'no API key');
    e.noKey = true;
    throw e;
  }
  const headers = { Authorization: `Key ${S.key}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, null, `Could not reach the server (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (res.status === 401) authFailed(detailText(data));
  else authOk();
  if (!res.ok) throw new ApiError(res.status, data, detailText(data) || `HTTP ${res.status}`);
  return data;
}


// ---------------------------------------------------------------- snippets

let snippetQueued = false;
function scheduleSnippet() {
  if (snippetQueued) return;
  snippetQueued = true;
  requestAnimationFrame(() => { snippetQueued = false; renderSnippet(); });
}

function pyLiteral(v, ind = '') {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number' || typeof v === 'string') return JSON.stringify(v);
  const inner = `${ind}    `;
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return `[\n${v.map((x) => inner + pyLiteral(x, inner)).join(',\n')},\n${ind}]`;
  }
  const entries = Object.entries(v);
  if (!entries.length) return '{}';
  return `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pyLiteral(x, inner)}`).join(',\n')},\n${ind}}`;
}

function snippet(lang, body) {
  const base = location.origin;
  const json = JSON.stringify(body, null, 2);
  if (lang === 'curl') {
    return [
      `curl -X POST '${base}/queue/${ENDPOINT}' \\`,
      `  -H "Authorization: Key $FAL_KEY" \\`,
      `  -H 'Content-Type: application/json' \\`,
      `  -d '${json.replace(/'/g, "'\\''")}'`,
      '',
      '# The answer carries status_url and response_url; poll the first, then GET the second:',
      `# curl -H "Authorization: Key $FAL_KEY" "$STATUS_URL?logs=1"`,
      `# curl -H "Authorization: Key $FAL_KEY" "$RESPONSE_URL"`,
    ].join('\n');
  }
  if (lang === 'js') {
    const input = json.replace(/\n/g, '\n  ');
    return [
      'import { createFalClient } from "@fal-ai/client";',
      '',
      `const base = "${base}";`,
      'const fal = createFalClient({',
      '  credentials: process.env.FAL_KEY,',
      '  // Point the client at this server: rewrite the fal hosts...',
      '  requestMiddleware: async (r) => ({',
      '    ...r,',
      '    url: r.url',
      '      .replace("https://queue.fal.run/", `${base}/queue/`)',
      '      .replace("https://fal.run/", `${base}/run/`)',
      '      .replace("https://rest.fal.ai/", `${base}/rest/`),',
      '  }),',
      '  // ...or send everything through its proxy route instead:',
      '  // proxyUrl: { url: `${base}/proxy`, when: "always" },',
      '});',
      '',
      `const { data } = await fal.subscribe("${ENDPOINT}", {`,
      `  input: ${input},`,
      '  logs: true,',
      '  onQueueUpdate: (u) => console.log(u.status, u.logs?.at(-1)?.message),',
      '});',
      'console.log(data.video.url, data.seed);',
    ].join('\n');
  }
  return [
    'import os',
    'import fal_client, fal_client.client as fc',
    '',
    '# Point the client at this server (set these before the first call):',
    `base = "${base}"`,
    'fc.QUEUE_URL_FORMAT, fc.RUN_URL_FORMAT = f"{base}/queue/", f"{base}/run/"',
    'fc.REST_URL, fc.CDN_URL = f"{base}/rest", f"{base}/cdn"',
    '',
    'client = fal_client.SyncClient(key=os.environ["FAL_KEY"])',
    '# Local files: client.upload_file("ref.png") returns a URL for image_url / video_url.',
    `result = client.subscribe("${ENDPOINT}", arguments=${pyLiteral(body)}, with_logs=True)`,
    'print(result["video"]["url"], result["seed"])',
  ].join('\n');
}

const SNIPPET_NOTES = {
  curl: 'The same request, with your key in $FAL_KEY. Fields left at their defaults are not sent.',
  js: '@fal-ai/client 1.10+ pointed at this server, key in FAL_KEY.',
  python: 'fal-client (Python) pointed at this server, key in FAL_KEY.',
};

function renderSnippet() {
  $('#snippet').textContent = snippet(S.lang, collect(true));
  $('#snippet-note').textContent = SNIPPET_NOTES[S.lang];
}

// ---------------------------------------------------------------- submit, poll, result

async function submit() {
  if (S.job) return;
  clearErrors();
  const btn = $('#submit');
  const note = $('#submit-note');
  btn.disabled = true;
  try {
    const pending = [...fields.values()].filter((f) => f.pending).map((f) => f.pending);
    if (pending.length) {
      note.textContent = 'Waiting for uploads to finish…';
      await Promise.allSettled(pending);
    }
    const failed = [...fields.values()].filter((f) => f.uploadError);
    if (failed.length) {
      setError($('#general-error'), `Not submitted: the upload of ${failed.map((f) => f.name).join(', ')} failed.`);
      return;
    }
    note.textContent = 'Submitting…';
    const r = await api('POST', `/queue/${ENDPOINT}`, collect(false));
    startJob(r);
  } catch (e) {
    submitFailed(e);
  } finally {
    note.textContent = '';
    if (!S.job) btn.disabled = false;
  }
}

function submitFailed(e) {
  const general = $('#general-error');
  if (e.status === 422 && Array.isArray(e.data?.detail)) {
    const loose = [];
    let first = null;
    for (const d of e.data.detail) {
      const loc = (d.loc || []).filter((x) => x !== 'body');
      const f = fields.get(String(loc[0]));
      const msg = d.msg || d.type || 'invalid';
      if (f) {
        fieldError(f, loc.length > 1 ? `${loc.slice(1).map((x) => (typeof x === 'number' ? `#${x + 1}` : x)).join(' ')}: ${msg}` : msg);
        first = first || f;
      } else loose.push(loc.length ? `${loc.join('.')}: ${msg}` : msg);
    }
    const n = e.data.detail.length;
    setError(general, `The server refused the request (${n} problem${n === 1 ? '' : 's'})${loose.length ? `: ${loose.join('; ')}` : ' — see the marked fields.'}`);
    first?.row.scrollIntoView({ block: 'center', behavior: 'smooth' });
  } else if (e.noKey) {
    setError(general, 'Not submitted: enter an API key first.');
  } else if (e.status === 401) {
    setError(general, 'Not submitted: the API key was refused (see the key box above).');
  } else {
    setError(general, `${e.status ? `HTTP ${e.status}: ` : ''}${e.message}`);
  }
}

function startJob(r) {
  const id = r.request_id;
  S.job = { id, started: Date.now(), timer: null, failures: 0, logCount: -1 };
  $('#request-id').textContent = id;
  $('#log').textContent = '';
  setError($('#run-error'), '');
  show($('#result'), false);
  show($('#run'), true);
  show($('#cancel'), true);
  $('#cancel').disabled = false;
  $('#submit').disabled = true;
  renderStatus(r);
  S.job.timer = setInterval(tickElapsed, 1000);
  tickElapsed();
  $('#run').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  setTimeout(poll, POLL_MS);
}

function tickElapsed() {
  if (S.job) $('#elapsed').textContent = `· ${Math.round((Date.now() - S.job.started) / 1000)} s`;
}

async function poll() {
  const job = S.job;
  if (!job) return;
  let st;
  try {
    st = await api('GET', `/queue/${ENDPOINT}/requests/${encodeURIComponent(job.id)}/status?logs=1`);
    job.failures = 0;
  } catch (e) {
    if (S.job !== job) return;
    if (e.status === 0 || e.status >= 500 || e.status === 429) {
      job.failures += 1;
      $('#status-text').textContent = `Connection trouble (${e.message}); retrying…`;
      if (job.failures < 40) { setTimeout(poll, Math.min(5000, POLL_MS * job.failures)); return; }
    }
    endJob(`Lost track of the request: ${e.message}`);
    return;
  }
  if (S.job !== job) return;
  renderStatus(st);
  if (st.status === 'COMPLETED') await finish(job, st);
  else setTimeout(poll, POLL_MS);
}

function renderStatus(st) {
  const run = $('#run');
  run.dataset.state = st.status || '';
  const bar = $('#progress');
  const qp = $('#queue-position');
  const text = { IN_QUEUE: 'Queued', IN_PROGRESS: 'Running', COMPLETED: 'Finished' }[st.status] || st.status;
  $('#status-text').textContent = text;
  show(qp, st.status === 'IN_QUEUE');
  if (st.status === 'IN_QUEUE') {
    const n = st.queue_position ?? 0;
    qp.textContent = `Position in queue: ${n}${n === 0 ? ' (next)' : ''}`;
    qp.dataset.position = String(n);
  }
  const p = st.progress;
  if (st.status === 'IN_PROGRESS' && p && p.total > 0) {
    bar.max = p.total;
    bar.value = Math.min(p.done, p.total);
    $('#progress-stage').textContent = p.stage || '';
    $('#progress-steps').textContent = `step ${p.done}/${p.total}`;
    $('#progress-eta').textContent = Number.isFinite(p.eta_s) ? `ETA ${fmtSeconds(p.eta_s)}` : '';
  } else if (st.status === 'COMPLETED') {
    bar.max = 1; bar.value = 1;
    for (const s of ['#progress-stage', '#progress-steps', '#progress-eta']) $(s).textContent = '';
  } else {
    bar.removeAttribute('value'); // indeterminate
    if (st.status === 'IN_QUEUE') {
      for (const s of ['#progress-stage', '#progress-steps', '#progress-eta']) $(s).textContent = '';
    }
  }
  if (Array.isArray(st.logs) && S.job && st.logs.length !== S.job.logCount) {
    S.job.logCount = st.logs.length;
    const log = $('#log');
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.textContent = st.logs.map((l) => {
      const t = l.timestamp ? new Date(l.timestamp) : null;
      const ts = t && !Number.isNaN(t.getTime()) ? t.toLocaleTimeString() : '';
      return `${ts} ${(l.level || '').padEnd(5)} ${l.message}`;
    }).join('\n');
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
}

function fmtSeconds(s) {
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

async function finish(job, st) {
  show($('#cancel'), false);
  try {
    const r = await api('GET', `/queue/${ENDPOINT}/requests/${encodeURIComponent(job.id)}`);
    if (S.job !== job) return;
    showResult(r);
    endJob(null);
  } catch (e) {
    if (S.job !== job) return;
    endJob(`The job failed: ${e.message || st.error || 'unknown error'}`);
  }
}

function endJob(error) {
  if (S.job) clearInterval(S.job.timer);
  tickElapsed();
  S.job = null;
  show($('#cancel'), false);
  $('#submit').disabled = false;
  if (error) {
    setError($('#run-error'), error);
    $('#status-text').textContent = 'Failed';
    $('#run').dataset.state = 'FAILED';
    $('#progress').value = 0;
  }
}

async function cancel() {
  const job = S.job;
  if (!job) return;
  $('#cancel').disabled = true;
  try {
    await api('PUT', `/queue/${ENDPOINT}/requests/${encodeURIComponent(job.id)}/cancel`);
    $('#status-text').textContent = 'Cancellation requested…';
  } catch (e) {
    if (e.data?.status !== 'ALREADY_COMPLETED') setError($('#run-error'), `Cancel failed: ${e.message}`);
  }
}

function mediaFacts(file) {
  return [file.file_name, fmtBytes(file.file_size), file.content_type].filter(Boolean).join(' · ');
}

function showResult(r) {
  const v = $('#result-video');
  const dur = $('#result-duration');
  dur.textContent = '…';
  delete dur.dataset.seconds;
  v.onloadedmetadata = () => {
    if (Number.isFinite(v.duration)) {
      dur.textContent = `${v.duration.toFixed(2)} s`;
      dur.dataset.seconds = String(v.duration);
    }
  };
  v.onerror = () => { dur.textContent = 'the browser could not load this video'; };
  v.src = r.video?.url || '';
  const a = $('#result-download');
  a.href = r.video?.url || '#';
  a.setAttribute('download', r.video?.file_name || 'scail.mp4');
  $('#result-file').textContent = r.video ? mediaFacts(r.video) : '';
  $('#result-seed').textContent = r.seed ?? '';
  $('#reuse-seed').hidden = r.seed === undefined || !fields.has('seed');
  const extra = $('#result-extra');
  extra.replaceChildren();
  for (const [k, f] of Object.entries(r)) {
    if (k === 'video' || !f || typeof f !== 'object' || !f.url) continue;
    const caption = el('figcaption', {}, el('code', { text: k }), ' ',
      el('a', { href: f.url, download: f.file_name || '', text: 'download' }));
    // Lossless FFV1 masks are for editing and sending back; browsers cannot play them.
    const playable = !/matroska/.test(f.content_type || '');
    extra.append(el('figure', { class: 'extra', 'data-output': k }, caption, playable
      ? el('video', { src: f.url, controls: true, muted: true, loop: true, playsinline: true, preload: 'metadata' })
      : el('p', { class: 'small muted', text: 'Lossless (FFV1 in Matroska): every palette colour exact, to edit and pass back as driving_mask_url; not playable in a browser.' })));
  }
  show($('#result'), true);
  $('#result').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

// ---------------------------------------------------------------- start-up

async function loadHealth() {
  try {
    const h = await (await fetch('/health')).json();
    const note = String(h.weights || '');
    const m = note.match(/^(demo|none):\s*(.*)$/s);
    const banner = $('#banner');
    if (m) {
      banner.className = `banner ${m[1] === 'demo' ? 'warn' : 'bad'}`;
      banner.dataset.kind = m[1];
      banner.replaceChildren(el('strong', { text: m[1] === 'demo' ? 'Demo mode: ' : 'No weights: ' }), ...richText(m[2]));
      show(banner, true);
    }
    $('#server-info').textContent = `scail ${h.version || ''} · weights: ${note || 'unknown'} · queued ${h.queued ?? '?'}, running ${h.running ?? '?'}`;
  } catch (e) {
    $('#server-info').textContent = `health check failed: ${e.message}`;
  }
}

async function loadSchema() {
  try {
    const res = await fetch('/openapi.json');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    buildForm(await res.json(), { api, changed: scheduleSnippet });
    $('#form').dataset.ready = '1';
    $('#submit').disabled = false;
    renderSnippet();
  } catch (e) {
    setError($('#general-error'), `Could not build the form from /openapi.json: ${e.message}`);
  } finally {
    show($('#form-loading'), false);
  }
}

function initKey() {
  const input = $('#api-key');
  try { S.key = localStorage.getItem(KEY_STORE) || ''; } catch { S.key = ''; }
  input.value = S.key;
  input.addEventListener('input', () => {
    S.key = input.value.trim();
    try { localStorage.setItem(KEY_STORE, S.key); } catch { /* private mode */ }
    authOk();
  });
  $('#key-toggle').addEventListener('click', (e) => {
    const showing = input.type === 'text';
    input.type = showing ? 'password' : 'text';
    e.currentTarget.textContent = showing ? 'Show' : 'Hide';
    e.currentTarget.setAttribute('aria-pressed', String(!showing));
  });
}

function initCode() {
  for (const t of document.querySelectorAll('.tab')) {
    t.addEventListener('click', () => {
      S.lang = t.dataset.lang;
      for (const o of document.querySelectorAll('.tab')) o.setAttribute('aria-selected', String(o === t));
      renderSnippet();
    });
  }
  $('#copy-snippet').addEventListener('click', async (e) => {
    const btn = e.currentTarget;
    const text = $('#snippet').textContent;
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      const range = document.createRange();
      range.selectNodeContents($('#snippet'));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      btn.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
  });
}

initKey();
initCode();
$('#submit').addEventListener('click', submit);
$('#cancel').addEventListener('click', cancel);
$('#reuse-seed').addEventListener('click', () => {
  const f = fields.get('seed');
  const input = $('#field-seed');
  if (!f || !input) return;
  input.value = $('#result-seed').textContent;
  input.dispatchEvent(new Event('input', { bubbles: true }));
  f.row.scrollIntoView({ block: 'center', behavior: 'smooth' });
});
loadHealth();
loadSchema();
