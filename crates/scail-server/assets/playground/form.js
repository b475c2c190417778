// scail playground, the form: built from the ScailInput schema of /openapi.json, one row per
// field (`[data-field=NAME]`, control `#field-NAME`, file input `#file-NAME`), with uploads through
// the fal storage protocol. app.js drives the rest (key, submit, status, result, snippets).

// Preferred order of known fields; anything else follows by name, so new fields need no change here.
const ORDER = ['prompt', 'image_url', 'video_url', 'mode', 'driving_type', 'subject_type', 'resolution',
  'preset', 'sampler', 'num_inference_steps', 'guidance_scale', 'shift', 'seed', 'loras',
  'output_preprocessing'];

/** name -> field controller (see makeField). */
export const fields = new Map();
/** Set by buildForm: the authenticated API call and the "form changed" callback. */
const hooks = { api: null, changed: () => {} };

export const $ = (sel, root = document) => root.querySelector(sel);

/** Small element builder: el('div', {class: 'x', text: 'hi', onclick: f}, child, ...). */
export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** Text with `backtick` spans shown as <code>, built as DOM nodes (never innerHTML). */
export function richText(s) {
  const parts = String(s).split('`');
  if (parts.length % 2 === 0) return [String(s)]; // an odd backtick: plain text
  return parts.map((part, i) => (i % 2 ? el('code', { text: part }) : part));
}

export function show(e, on = true) { e.hidden = !on; }
export function setError(e, msg) { e.replaceChildren(...richText(msg || '')); show(e, !!msg); }
export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '';
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

/** The human message of an error body: `detail` (string or fal's validation list) or `message`. */
export function detailText(data) {
  if (!data) return '';
  if (typeof data === 'string') return data;
  const d = data.detail ?? data.message ?? data.error;
  if (typeof d === 'string') return d;
  if (Array.isArray(d)) return d.map((x) => `${(x.loc || []).filter((p) => p !== 'body').join('.')}: ${x.msg}`).join('; ');
  if (d && typeof d === 'object') return JSON.stringify(d);
  return data.status ? String(data.status) : '';
}

/** PUT the raw bytes to a signed upload URL, reporting progress (0..1). */
function putWithProgress(url, file, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', url);
    x.setRequestHeader('Content-Type', contentType);
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onload = () => {
      if (x.status >= 200 && x.status < 300) return resolve();
      let data = x.responseText;
      try { data = JSON.parse(x.responseText); } catch { /* keep text */ }
      reject(new Error(detailText(data) || `HTTP ${x.status}`));
    };
    x.onerror = () => reject(new Error('network error during upload'));
    x.send(file);
  });
}

// ---------------------------------------------------------------- the form

const isFileField = (name, p) => p.type === 'string' && name.endsWith('_url');
const isExtension = (p) => /^scail extension/i.test(p.description || '');

function boundsHint(p) {
  const parts = [];
  if (p.minimum !== undefined && p.maximum !== undefined) parts.push(`${p.minimum}–${p.maximum}`);
  else if (p.minimum !== undefined) parts.push(`≥ ${p.minimum}`);
  else if (p.maximum !== undefined) parts.push(`≤ ${p.maximum}`);
  if (p.maxLength !== undefined) parts.push(`at most ${p.maxLength.toLocaleString()} characters`);
  if (p.maxItems !== undefined) parts.push(`at most ${p.maxItems}`);
  const emptyDefault = Array.isArray(p.default) ? !p.default.length : false;
  if (p.default !== undefined && !emptyDefault) parts.push(`default ${JSON.stringify(p.default)}`);
  return parts.join(', ');
}

/** A bare input for a scalar schema (used by top-level fields and by list rows). */
function scalarInput(p, id, name, inList = false) {
  if (p.enum) {
    const sel = el('select', { id, name });
    // A list row was added on purpose: it starts at the first choice rather than at "not set".
    if (p.default === undefined && !inList) sel.append(el('option', { value: '', text: '(not set)' }));
    for (const v of p.enum) sel.append(el('option', { value: String(v), text: String(v) }));
    if (p.default !== undefined) sel.value = String(p.default);
    return sel;
  }
  if (p.type === 'boolean') return el('input', { type: 'checkbox', id, name, checked: p.default === true });
  if (p.type === 'integer' || p.type === 'number') {
    return el('input', {
      type: 'number', id, name, inputmode: p.type === 'integer' ? 'numeric' : 'decimal',
      min: p.minimum !== undefined ? String(p.minimum) : null,
      max: p.maximum !== undefined ? String(p.maximum) : null,
      step: p.type === 'integer' ? '1' : 'any',
      value: p.default !== undefined ? String(p.default) : null,
      placeholder: p.default === undefined ? 'empty: not sent' : null,
    });
  }
  if (p.type === 'string' && (p.maxLength || 0) > 300) {
    return el('textarea', { id, name, rows: 3, maxlength: String(p.maxLength) });
  }
  return el('input', { type: 'text', id, name, value: p.default !== undefined ? String(p.default) : null,
    maxlength: p.maxLength ? String(p.maxLength) : null });
}

/** The value of a scalar input, or undefined when empty. */
function scalarValue(input, p) {
  if (p.type === 'boolean') return input.checked;
  const v = input.value;
  if (v === '') return undefined;
  if (p.type === 'integer' || p.type === 'number') {
    const n = Number(v);
    return Number.isFinite(n) ? n : v; // let the server judge anything odd
  }
  return v;
}

function scalarReset(input, p) {
  if (p.type === 'boolean') input.checked = p.default === true;
  else input.value = p.default !== undefined ? String(p.default) : '';
}

/**
 * One field: its row in the DOM and {value(), reset()}. `value()` is undefined when the field is
 * not to be sent: empty, or untouched and at its schema default (the server applies the same
 * default, and a preset can then pick its own recipe).
 */
function makeField(name, p, required) {
  const id = `field-${name}`;
  const badges = [];
  if (required) badges.push(el('span', { class: 'badge req', text: 'required' }));
  if (isExtension(p)) badges.push(el('span', { class: 'badge ext', text: 'scail extension' }));
  const resetBtn = el('button', { type: 'button', class: 'ghost small-btn reset', text: 'reset', hidden: true,
    title: 'Back to the default (not sent)' });
  const head = el('div', { class: 'field-head' }, el('label', { for: id, class: 'name', text: name }), badges, resetBtn);
  let desc = (p.description || '').replace(/^scail extension:\s*/i, '');
  desc = desc.charAt(0).toUpperCase() + desc.slice(1);
  const hint = boundsHint(p);
  const help = el('p', { class: 'help' }, richText(desc), hint ? el('span', { class: 'muted', text: ` (${hint})` }) : null);
  const err = el('p', { class: 'field-error', role: 'alert', hidden: true });
  const row = el('div', { class: `field type-${p.type || 'any'}`, 'data-field': name }, head);
  const f = { name, p, required, row, err, touched: false };

  if (isFileField(name, p)) buildFileField(f, id);
  else if (p.type === 'array') buildListField(f, id);
  else if (p.type === 'object' || (!p.type && !p.enum)) {
    const ta = el('textarea', { id, rows: 3, placeholder: 'JSON' });
    row.append(ta);
    f.value = () => {
      if (!ta.value.trim()) return undefined;
      try { return JSON.parse(ta.value); } catch { return ta.value; }
    };
    f.reset = () => { ta.value = ''; };
  } else {
    const input = scalarInput(p, id, name);
    const wrap = el('div', { class: 'control' }, input);
    if (input.tagName === 'TEXTAREA' && p.maxLength) {
      const count = el('span', { class: 'counter muted small' });
      const upd = () => { count.textContent = `${input.value.length.toLocaleString()} / ${p.maxLength.toLocaleString()}`; };
      input.addEventListener('input', upd); upd();
      wrap.append(count);
    }
    if (p.type === 'boolean') wrap.append(el('label', { for: id, class: 'small muted', text: 'on' }));
    row.append(wrap);
    f.value = () => {
      const v = scalarValue(input, p);
      if (v === undefined) return undefined;
      if (p.type === 'boolean' && p.default === undefined && !f.touched) return undefined;
      if (!required && !f.touched && p.default !== undefined && v === p.default) return undefined;
      // Showing what the chosen preset fills in: the server fills the same, so it is not sent.
      if (!f.touched && f.presetValue !== undefined && v === f.presetValue) return undefined;
      return v;
    };
    f.reset = () => { scalarReset(input, p); if (f.presetValue !== undefined) f.setShown(f.presetValue); };
    f.setShown = (v) => {
      f.presetValue = v;
      if (v === undefined) scalarReset(input, p);
      else if (p.type === 'boolean') input.checked = v === true;
      else input.value = String(v);
    };
  }
  row.append(help, err);

  const touch = () => { f.touched = true; show(resetBtn, !f.upload && !required); clearFieldError(f); hooks.changed(); };
  row.addEventListener('input', touch);
  row.addEventListener('change', touch);
  resetBtn.addEventListener('click', () => { f.reset(); f.touched = false; show(resetBtn, false); hooks.changed(); });
  return f;
}

function fileKind(name, p) {
  if (/image/.test(name)) return 'image';
  if (/video/.test(name) || /video/i.test(p.description || '')) return 'video';
  return 'any';
}

function guessMedia(url, fallback) {
  if (/^data:image\//.test(url) || /\.(png|jpe?g|webp|gif|bmp|avif)(\?|#|$)/i.test(url)) return 'image';
  if (/^data:video\//.test(url) || /\.(mp4|webm|mov|mkv|m4v|avi)(\?|#|$)/i.test(url)) return 'video';
  return fallback === 'any' ? 'image' : fallback;
}

/** A file field: drop zone + real <input type=file> + URL box + upload progress + preview. */
function buildFileField(f, id) {
  const { name, p, row } = f;
  const kind = fileKind(name, p);
  const file = el('input', { type: 'file', id: `file-${name}`, class: 'visually-hidden',
    accept: kind === 'image' ? 'image/*' : kind === 'video' ? 'video/*' : 'image/*,video/*' });
  const what = { image: 'an image', video: 'a video', any: 'a file' }[kind];
  const zoneText = el('span', { text: `Drop ${what} here or click to choose` });
  const zone = el('label', { class: 'dropzone', for: `file-${name}` }, zoneText);
  const url = el('input', { type: 'url', id, name, placeholder: '…or paste a URL (https://…, data:…)', spellcheck: 'false' });
  const bar = el('progress', { class: 'upload-progress', id: `upload-progress-${name}`, max: '1', value: '0', hidden: true });
  const status = el('span', { class: 'upload-status small muted' });
  const preview = el('div', { class: 'preview' });
  const clear = el('button', { type: 'button', class: 'ghost small-btn', text: 'clear', hidden: true });
  row.append(el('div', { class: 'filebox' }, file, zone, url, el('div', { class: 'upload-line' }, bar, status, clear), preview));
  let blobUrl = null;

  const setPreview = (src, media) => {
    preview.replaceChildren();
    if (!src) return;
    const m = media === 'video'
      ? el('video', { src, muted: true, controls: true, playsinline: true, preload: 'metadata' })
      : el('img', { src, alt: `${name} preview` });
    m.addEventListener('error', () => preview.replaceChildren(), { once: true });
    preview.append(m);
  };
  const forget = () => {
    f.pending = null; f.uploadError = null;
    if (blobUrl) URL.revokeObjectURL(blobUrl);
    blobUrl = null;
  };

  f.upload = async (blob) => {
    forget();
    clearFieldError(f);
    f.touched = true;
    blobUrl = URL.createObjectURL(blob);
    setPreview(blobUrl, blob.type.startsWith('video/') ? 'video' : blob.type.startsWith('image/') ? 'image' : guessMedia(blob.name, kind));
    url.value = '';
    show(bar, true); bar.value = 0; show(clear, true);
    status.textContent = `Uploading ${blob.name} (${fmtBytes(blob.size)})…`;
    row.classList.add('uploading');
    const ct = blob.type || 'application/octet-stream';
    const job = (async () => {
      const init = await hooks.api('POST', '/rest/storage/upload/initiate?storage_type=fal-cdn-v3',
        { content_type: ct, file_name: blob.name || 'upload.bin' });
      await putWithProgress(init.upload_url, blob, ct, (x) => { bar.value = x; });
      return init.file_url;
    })();
    f.pending = job;
    hooks.changed();
    try {
      const u = await job;
      if (f.pending !== job) return;
      url.value = u; bar.value = 1;
      status.textContent = `Uploaded ${blob.name} (${fmtBytes(blob.size)})`;
    } catch (e) {
      if (f.pending !== job) return;
      f.uploadError = e.message;
      status.textContent = '';
      show(bar, false);
      fieldError(f, `Upload failed: ${e.status === 401 ? 'the API key was refused' : e.message}`);
    } finally {
      if (f.pending === job) f.pending = null;
      row.classList.remove('uploading');
      hooks.changed();
    }
  };

  file.addEventListener('change', () => {
    const chosen = file.files[0];
    file.value = ''; // choosing the same file again uploads it again
    if (chosen) f.upload(chosen);
  });
  for (const ev of ['dragenter', 'dragover']) {
    zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) zone.addEventListener(ev, () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    const dropped = e.dataTransfer?.files?.[0];
    if (dropped) { f.upload(dropped); return; }
    const text = e.dataTransfer?.getData('text/uri-list') || e.dataTransfer?.getData('text/plain');
    if (text) { url.value = text.trim(); url.dispatchEvent(new Event('change', { bubbles: true })); }
  });
  url.addEventListener('change', () => {
    forget();
    show(bar, false); status.textContent = ''; file.value = '';
    const v = url.value.trim();
    show(clear, !!v);
    setPreview(/^(https?:|data:|blob:)/.test(v) ? v : null, guessMedia(v, kind));
  });
  clear.addEventListener('click', () => { f.reset(); f.touched = false; hooks.changed(); });

  f.value = () => (url.value.trim() ? url.value.trim() : undefined);
  f.reset = () => {
    forget();
    url.value = ''; file.value = ''; status.textContent = '';
    show(bar, false); show(clear, false); setPreview(null);
  };
}

/** An array field: rows with add/remove; object items get one control per item property. */
function buildListField(f, id) {
  const { name, p, row } = f;
  const item = p.items || { type: 'string' };
  const subProps = item.type === 'object' && item.properties ? item.properties : null;
  const list = el('div', { class: 'list', id });
  const empty = el('p', { class: 'muted small empty', text: 'None.' });
  const rows = [];
  let n = 0;
  const addRow = () => {
    const k = n++;
    const controls = [];
    const r = el('div', { class: 'list-row' });
    if (subProps) {
      for (const [sub, sp] of Object.entries(subProps)) {
        const input = scalarInput(sp, `field-${name}-${k}-${sub}`, sub, true);
        controls.push([sub, sp, input]);
        r.append(el('label', { class: 'sub', title: sp.description || '' },
          el('span', { class: 'small muted', text: sub }), input));
      }
    } else {
      const input = scalarInput(item, `field-${name}-${k}`, name, true);
      controls.push([null, item, input]);
      r.append(input);
    }
    const entry = { r, controls };
    r.append(el('button', { type: 'button', class: 'ghost small-btn danger', text: 'remove', onclick: () => {
      rows.splice(rows.indexOf(entry), 1); r.remove(); show(empty, !rows.length); syncAdd();
      f.touched = true; hooks.changed();
    } }));
    rows.push(entry);
    list.append(r);
    show(empty, false);
    syncAdd();
  };
  const add = el('button', { type: 'button', class: 'ghost small-btn', id: `add-${name}`,
    text: `add ${subProps && subProps.name ? 'one' : 'a row'}`, onclick: () => { addRow(); f.touched = true; hooks.changed(); } });
  // An enum with no choices (say, no LoRA files on the server): nothing can be added.
  const noChoice = Object.entries(subProps || { '': item }).find(([, sp]) => Array.isArray(sp.enum) && !sp.enum.length);
  if (noChoice) {
    add.disabled = true;
    empty.textContent = `None available (the server lists no choices${noChoice[0] ? ` for ${noChoice[0]}` : ''}).`;
  }
  function syncAdd() { if (!noChoice) add.disabled = p.maxItems !== undefined && rows.length >= p.maxItems; }
  row.append(el('div', { class: 'control list-box' }, list, empty, add));
  f.value = () => {
    const out = [];
    for (const { controls } of rows) {
      if (!subProps) { const v = scalarValue(controls[0][2], controls[0][1]); if (v !== undefined) out.push(v); continue; }
      const o = {};
      for (const [sub, sp, input] of controls) {
        const v = scalarValue(input, sp);
        if (v !== undefined) o[sub] = v;
      }
      if (Object.keys(o).length) out.push(o);
    }
    return out.length ? out : undefined;
  };
  f.reset = () => { rows.splice(0).forEach((x) => x.r.remove()); show(empty, true); syncAdd(); };
}

export function fieldError(f, msg) {
  f.err.append(el('span', { text: msg }));
  show(f.err, true);
  f.row.classList.add('has-error');
}
function clearFieldError(f) {
  f.err.replaceChildren();
  show(f.err, false);
  f.row.classList.remove('has-error');
}
export function clearErrors() {
  for (const f of fields.values()) clearFieldError(f);
  setError($('#general-error'), '');
}

export function buildForm(doc, { api, changed }) {
  hooks.api = api;
  hooks.changed = changed;
  const schema = doc?.components?.schemas?.ScailInput;
  if (!schema?.properties) throw new Error('openapi.json has no components.schemas.ScailInput');
  const required = new Set(schema.required || []);
  const rank = (n) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  const names = Object.keys(schema.properties).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const groups = [
    ['Inputs', null, names.filter((n) => required.has(n))],
    ['Options', null, names.filter((n) => !required.has(n) && !isExtension(schema.properties[n]))],
    ['scail extensions', 'Beyond the hosted fal-ai/scail-2 API: accepted only by scail.',
      names.filter((n) => !required.has(n) && isExtension(schema.properties[n]))],
  ];
  const form = $('#form');
  form.replaceChildren();
  for (const [title, note, list] of groups) {
    if (!list.length) continue;
    const fs = el('fieldset', { class: 'group' }, el('legend', { text: title }));
    if (note) fs.append(el('p', { class: 'small muted', text: note }));
    for (const n of list) {
      const f = makeField(n, schema.properties[n], required.has(n));
      fields.set(n, f);
      fs.append(f.row);
    }
    form.append(fs);
  }
  form.addEventListener('submit', (e) => e.preventDefault());
  followPreset();
}

/** Untouched fields show what the chosen preset fills in (`x-recipes` of the preset field). */
function followPreset() {
  const preset = fields.get('preset');
  const recipes = preset?.p?.['x-recipes'];
  const sel = $('#field-preset');
  if (!recipes || !sel) return;
  const keys = new Set(Object.values(recipes).flatMap((r) => Object.keys(r)));
  sel.addEventListener('change', () => {
    const r = recipes[sel.value] || {};
    for (const k of keys) {
      const f = fields.get(k);
      if (f && !f.touched && f.setShown) f.setShown(r[k]);
    }
    hooks.changed();
  });
}

/** The request body from the form; pending uploads appear as placeholders when `draft`. */
export function collect(draft) {
  const body = {};
  for (const f of fields.values()) {
    const v = f.pending && draft ? '<uploading…>' : f.value();
    if (v !== undefined) body[f.name] = v;
  }
  return body;
}
