// nlviz attention view: every frame's overlay follows the mouse, computed here from the block's factors.
//
// Python sends, once per (analysis, block), one bytes payload (nlviz/viewdata.py documents the layout):
// a JSON header, the frames as one JPEG atlas, the block's queries and keys (float32), colour tables.
// Hovering any pixel of any frame makes it the query: its attention row is one pass over the keys
// (O(N_k * C)), and every frame's overlay is redrawn, with no request to the server. A click pins the
// query and sends (frame, x, y) back (trigger "pin"); arrow keys move the pinned query one query cell,
// PageUp/PageDown change its frame. Small state that changes per click (the pinned query, the overlay
// style, "hide the query's own neighbourhood", the server's row for over-budget blocks) arrives through
// a second, tiny component (CONTROL below) and a bus on `window`, so the big payload is sent only once.
// Python (BlockCapture.row) is the reference for every number computed here; text from users and
// checkpoints is put into the page with textContent only.

const BUS_KEY = "__nlvizAttentionBus";

function bus() {
  if (!window[BUS_KEY]) {
    window[BUS_KEY] = { views: new Map(), control: new Map(), hover: new Map(), frameRequested: new Set() };
  }
  return window[BUS_KEY];
}

// ---------------------------------------------------------------------------------- the payload

export function unpack(u8) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const magic = String.fromCharCode(u8[0], u8[1], u8[2], u8[3]);
  if (magic !== "NLVZ") throw new Error("not an nlviz view payload");
  const version = dv.getUint32(4, true);
  if (version !== 1) throw new Error(`view payload version ${version}; this view reads version 1`);
  const headLen = dv.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(u8.subarray(12, 12 + headLen)));
  const arrays = {};
  let atlas = null;
  for (const [name, s] of Object.entries(header.sections)) {
    const bytes = u8.subarray(s.offset, s.offset + s.length);
    if (s.dtype === "jpeg") { atlas = bytes; continue; }
    const Kind = { float32: Float32Array, uint8: Uint8Array, int32: Int32Array }[s.dtype];
    if (!Kind) throw new Error(`unknown dtype ${s.dtype} for section ${name}`);
    const aligned = (u8.byteOffset + s.offset) % Kind.BYTES_PER_ELEMENT === 0;
    const buf = aligned ? u8.buffer : bytes.slice().buffer;
    const off = aligned ? u8.byteOffset + s.offset : 0;
    arrays[name] = new Kind(buf, off, s.length / Kind.BYTES_PER_ELEMENT);
  }
  return { header, arrays, atlas };
}

// ---------------------------------------------------------------------------------- geometry (nlviz.video.ClipGeometry)

// Python's float floor division a // b for b > 0 (floor of the exact quotient, as CPython computes it)
function floorDiv(a, b) {
  const mod = a % b;
  let div = (a - mod) / b;
  if (mod && (mod < 0) !== (b < 0)) div -= 1;
  let fl = Math.floor(div);
  if (div - fl > 0.5) fl += 1;
  return fl;
}

// key_index: the key position covering a query position along one axis (floor-mode pool)
function keyIndex(q, qSize, kSize) {
  const stride = Math.max(Math.floor(qSize / kSize), 1);
  return Math.min(Math.floor(q / stride), kSize - 1);
}

// displayed frame k, pixel (x, y) -> query cell [t, h, w], or {outside: reason}
export function queryCell(h, k, x, y) {
  const g = h.geometry;
  const [W, H] = g.frame_size;
  if (!(Number.isInteger(k) && k >= 0 && k < g.num_frames)) return { outside: `frame ${k} is not a sampled frame` };
  if (!(x >= 0 && x < W && y >= 0 && y < H)) return { outside: "outside the frame" };
  const xi = x * g.scale[0] - g.crop_offset[0], yi = y * g.scale[1] - g.crop_offset[1];
  const [wi, hi] = g.input_size;
  if (!(xi >= 0 && xi < wi && yi >= 0 && yi < hi)) {
    return { outside: "outside the centre crop the model sees: nothing to show there (move inside the yellow rectangle)" };
  }
  const t = k + 0.5;
  const [tIn, hIn, wIn] = h.input_shape;
  const [tq, hq, wq] = h.query_shape;
  return {
    cell: [Math.min(floorDiv(t * tq, tIn), tq - 1), Math.min(floorDiv(yi * hq, hIn), hq - 1),
           Math.min(floorDiv(xi * wq, wIn), wq - 1)],
  };
}

// ---------------------------------------------------------------------------------- one row (nlviz.nonlocal_block.affinity)

// allowed keys of a query cell (BlockCapture._row_mask), or null when every key is allowed
function allowedMask(h, cell) {
  const [tk, hk, wk] = h.key_shape;
  const [, hq, wq] = h.query_shape;
  const n = tk * hk * wk;
  if (h.dims === "spacetime" && h.time_groups === 1) return null;
  const mask = new Uint8Array(n);
  const [t, qh, qw] = cell;
  for (let kt = 0; kt < tk; kt++) {
    for (let kh = 0; kh < hk; kh++) {
      for (let kw = 0; kw < wk; kw++) {
        let ok;
        if (h.dims === "space") ok = kt === t;
        else if (h.dims === "time") ok = kh === keyIndex(qh, hq, hk) && kw === keyIndex(qw, wq, wk);
        else ok = Math.floor(kt / h.time_groups) === Math.floor(t / h.time_groups);
        mask[(kt * hk + kh) * wk + kw] = ok ? 1 : 0;
      }
    }
  }
  return mask;
}

// ---------------------------------------------------------------------------------- token attention (TokenCapture.rows)

// the heads a view averages: the control's pick for this view (null: every head, their mean)
function pickedHeads(view) {
  const n = view.header.tokens.heads;
  const heads = view.control.heads || {};
  const sel = heads[view.id];
  if (Number.isInteger(sel) && sel >= 0 && sel < n) return [sel];
  return Array.from({ length: n }, (_, i) => i);
}

// dot product of a[a0 .. a0+d) and b[b0 .. b0+d)
function dot(a, a0, b, b0, d) {
  let s = 0;
  for (let i = 0; i < d; i++) s += a[a0 + i] * b[b0 + i];
  return s;
}

// softmax of logits over the indices where ok (null: all), added into out with weight w
function addSoftmax(out, logits, ok, w) {
  let mx = -Infinity;
  for (let j = 0; j < logits.length; j++) if ((!ok || ok[j]) && logits[j] > mx) mx = logits[j];
  let sum = 0;
  const e = new Float64Array(logits.length);
  for (let j = 0; j < logits.length; j++) if (!ok || ok[j]) { e[j] = Math.exp(logits[j] - mx); sum += e[j]; }
  for (let j = 0; j < logits.length; j++) out[j] += (w * e[j]) / sum;
}

// one query cell's row over every key token (extra tokens first), averaged over the picked heads
function tokenRowAll(view, cell) {
  const h = view.header, a = view.arrays, tk = h.tokens;
  const [, hq, wq] = h.query_shape;
  const [kt, kh, kw] = h.key_shape;
  const ek = tk.key_extra, n = ek + kt * kh * kw, d = tk.head_dim, C = tk.heads * d;
  const qi = (cell[0] * hq + cell[1]) * wq + cell[2];
  const th = a.theta, ph = a.phi;
  const heads = pickedHeads(view);
  const out = new Float64Array(n);
  if (tk.rule === "swin_window") {
    const [Tp, Hp, Wp] = tk.padded, win = tk.window, sh = tk.shift;
    const pad = [Tp, Hp, Wp];
    const M = win[0] * win[1] * win[2];
    const rolled = cell.map((c, i) => (((c - sh[i]) % pad[i]) + pad[i]) % pad[i]);
    const start = rolled.map((r, i) => Math.floor(r / win[i]) * win[i]);
    const region = (r, i) => (!tk.shifted || sh[i] === 0 ? 0 : (r >= pad[i] - win[i] ? 1 : 0) + (r >= pad[i] - sh[i] ? 1 : 0));
    const iq = ((rolled[0] - start[0]) * win[1] + (rolled[1] - start[1])) * win[2] + (rolled[2] - start[2]);
    const keys = new Int32Array(M), ok = new Uint8Array(M);
    let m = 0;
    for (let x = 0; x < win[0]; x++) for (let y = 0; y < win[1]; y++) for (let z = 0; z < win[2]; z++, m++) {
      const r = [start[0] + x, start[1] + y, start[2] + z];
      const p = r.map((v, i) => (v + sh[i]) % pad[i]);
      keys[m] = a.key_token[(p[0] * Hp + p[1]) * Wp + p[2]];
      ok[m] = r.every((v, i) => region(v, i) === region(rolled[i], i)) ? 1 : 0;
    }
    const logits = new Float64Array(M), part = new Float64Array(M);
    for (const hh of heads) {
      for (let j = 0; j < M; j++) {
        logits[j] = h.scale * dot(th, qi * C + hh * d, ph, keys[j] * C + hh * d, d)
          + a.rel_table[a.rel_index[iq * M + j] * tk.heads + hh];
      }
      part.fill(0);
      addSoftmax(part, logits, ok, 1 / heads.length);
      for (let j = 0; j < M; j++) out[keys[j]] += part[j];
    }
    return out;
  }
  const logits = new Float64Array(n);
  for (const hh of heads) {
    const q0 = qi * C + hh * d;
    for (let j = 0; j < n; j++) logits[j] = h.scale * dot(th, q0, ph, j * C + hh * d, d);
    if (tk.rule === "mvit_rel_pos") {  // q . R_t[t, k_t] + q . R_h[h, k_h] + q . R_w[w, k_w], grid keys only
      const bt = new Float64Array(kt), bh = new Float64Array(kh), bw = new Float64Array(kw);
      for (let j = 0; j < kt; j++) bt[j] = dot(th, q0, a.rel_t, (cell[0] * kt + j) * d, d);
      for (let j = 0; j < kh; j++) bh[j] = dot(th, q0, a.rel_h, (cell[1] * kh + j) * d, d);
      for (let j = 0; j < kw; j++) bw[j] = dot(th, q0, a.rel_w, (cell[2] * kw + j) * d, d);
      for (let x = 0; x < kt; x++) for (let y = 0; y < kh; y++) for (let z = 0; z < kw; z++) {
        logits[ek + (x * kh + y) * kw + z] += bh[y] + bw[z] + bt[x];
      }
    }
    addSoftmax(out, logits, null, 1 / heads.length);
  }
  return out;
}

// Swin: the grid cells a query's (shifted) window holds, per axis [lo, hi) (SwinWindowRule.window_box)
export function windowBox(h, cell) {
  const tk = h.tokens;
  return cell.map((c, a) => {
    const p = tk.padded[a], w = tk.window[a], s = tk.shift[a];
    const r = (((c - s) % p) + p) % p;
    let lo = Math.floor(r / w) * w, hi = lo + w;
    if (tk.shifted && s && lo === p - w) { if (r < p - s) hi = p - s; else lo = p - s; }
    const start = (lo + s) % p;
    return [start, Math.min(start + hi - lo, h.key_shape[a])];
  });
}

// the grid part of a token row; the extra tokens' share (a class token, padding) kept on the view
function computeTokenRow(view, cell) {
  const all = tokenRowAll(view, cell);
  const ek = view.header.tokens.key_extra;
  let extra = 0;
  for (let j = 0; j < ek; j++) extra += all[j];
  view.extraWeight = ek ? extra : null;
  return all.slice(ek);
}

export function computeRow(view, cell) {
  if (view.header.attention === "tokens") return computeTokenRow(view, cell);
  const h = view.header, a = view.arrays;
  const [, hq, wq] = h.query_shape;
  const [tk, hk, wk] = h.key_shape;
  const n = tk * hk * wk, c = h.channels;
  const qi = (cell[0] * hq + cell[1]) * wq + cell[2];
  const mask = allowedMask(h, cell);
  const logits = new Float64Array(n);
  if (h.pairwise === "concatenation") {
    const qt = a.q_term[qi];
    for (let j = 0; j < n; j++) { const v = qt + a.k_term[j]; logits[j] = v > 0 ? v : 0; }
  } else {
    const th = a.theta, ph = a.phi, q0 = qi * c;
    for (let j = 0; j < n; j++) {
      let s = 0, k0 = j * c;
      for (let i = 0; i < c; i++) s += th[q0 + i] * ph[k0 + i];
      logits[j] = s;
    }
  }
  const row = new Float64Array(n);
  if (h.pairwise === "gaussian" || h.pairwise === "embedded_gaussian") {
    let mx = -Infinity;
    for (let j = 0; j < n; j++) {
      if (mask && !mask[j]) continue;
      logits[j] *= h.scale;
      if (logits[j] > mx) mx = logits[j];
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      if (mask && !mask[j]) continue;
      row[j] = Math.exp(logits[j] - mx);
      sum += row[j];
    }
    for (let j = 0; j < n; j++) row[j] /= sum;
  } else {
    let count = n;
    if (mask) { count = 0; for (let j = 0; j < n; j++) count += mask[j]; }
    for (let j = 0; j < n; j++) row[j] = mask && !mask[j] ? 0 : logits[j] / count;
  }
  return row;
}

// "hide the query's own neighbourhood" (nlviz.explore.own_neighbourhood): keys within `radius` key cells
function hiddenKeys(h, cell, radius) {
  const [tq, hq, wq] = h.query_shape;
  const [tk, hk, wk] = h.key_shape;
  const kt = keyIndex(cell[0], tq, tk), kh = keyIndex(cell[1], hq, hk), kw = keyIndex(cell[2], wq, wk);
  const out = new Uint8Array(tk * hk * wk);
  for (let y = Math.max(kh - radius, 0); y <= Math.min(kh + radius, hk - 1); y++) {
    for (let x = Math.max(kw - radius, 0); x <= Math.min(kw + radius, wk - 1); x++) out[(kt * hk + y) * wk + x] = 1;
  }
  return out;
}

// the honest colour scale of shown values (nlviz.render.value_range); NaN = hidden
export function valueRange(lo, hi, signedVariant) {
  if (!Number.isFinite(lo)) { lo = 0; hi = 0; }
  if (signedVariant && lo < 0) {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return { vmin: -m, vmax: m, signed: true };
  }
  return { vmin: 0, vmax: hi > 0 ? hi : 1, signed: false };
}

function extent(shown) {
  let lo = Infinity, hi = -Infinity;
  for (const v of shown) { if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
  return [lo, hi];
}

// ---------------------------------------------------------------------------------- drawing

const ALPHA = 0.6;

// RGBA of one weight over the frame, for canvas "source-over" blending:
// "heat": colour with opacity rising with the weight over the untouched frame (a weak map stays readable);
// "darken": nlviz.render.overlay's frame * f + colour * g (low weights darken the frame), as one layer.
function paint(out, o, v, scale, lut, style) {
  if (!Number.isFinite(v)) { out[o] = 0; out[o + 1] = 0; out[o + 2] = 0; out[o + 3] = 140; return; }
  const span = scale.vmax - scale.vmin || 1;
  const idx = Math.min(255, Math.max(0, Math.floor(((v - scale.vmin) / span) * 255)));
  const r = lut[idx * 3], g = lut[idx * 3 + 1], b = lut[idx * 3 + 2];
  let w = scale.signed ? Math.min(Math.abs(v) / scale.vmax, 1) : Math.min(Math.max((v - scale.vmin) / span, 0), 1);
  w = Math.sqrt(w);
  let A, k;
  if (style === "darken") {
    if (scale.signed) { A = ALPHA; k = 1; } else {
      const f = (1 - ALPHA * 0.8 * (1 - w)) * (1 - ALPHA * w);
      A = 1 - f; k = A > 0 ? (ALPHA * w) / A : 0;
    }
  } else {
    A = 0.85 * w; k = 1;
  }
  out[o] = r * k; out[o + 1] = g * k; out[o + 2] = b * k; out[o + 3] = Math.round(A * 255);
}

function drawMarker(ctx, x, y, r) {
  for (const [col, width] of [["#000", Math.max(1, r / 3) + 2], ["#00ff00", Math.max(1, r / 3)]]) {
    ctx.strokeStyle = col; ctx.lineWidth = width;
    ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(x - 2 * r, y); ctx.lineTo(x - r, y); ctx.moveTo(x + r, y); ctx.lineTo(x + 2 * r, y);
    ctx.moveTo(x, y - 2 * r); ctx.lineTo(x, y - r); ctx.moveTo(x, y + r); ctx.lineTo(x, y + 2 * r);
    ctx.stroke();
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---------------------------------------------------------------------------------- one view instance

class View {
  constructor(root, payload) {
    this.root = root;
    const { header, arrays, atlas } = unpack(payload);
    this.header = header; this.arrays = arrays;
    this.id = header.labels.view_id || "view";
    this.group = header.labels.group || this.id;
    this.query = null;       // {frame, x, y, source: "hover" | "pin"}
    this.pin = null;
    this.row = null; this.shown = null; this.scale = null;
    this.stats = { draws: 0, lastMs: 0, hoverMs: [] };  // hoverMs: pointer event -> this view redrawn (bench/hover.py)
    this.build();
    const blob = new Blob([atlas], { type: "image/jpeg" });
    this.ready = createImageBitmap(blob).then((bmp) => { this.bitmap = bmp; this.redraw(); });
  }

  get control() { return bus().control.get(this.group) || {}; }

  build() {
    const h = this.header;
    const [tw, th] = h.atlas.tile;
    this.root.replaceChildren();
    const top = el("div", "nlv-top");
    this.status = el("div", "nlv-status", "");
    this.bar = el("canvas", "nlv-bar"); this.bar.width = 160; this.bar.height = 10;
    this.barText = el("span", "nlv-bartext", "");
    const legend = el("div", "nlv-legend"); legend.append(this.bar, this.barText);
    top.append(this.status, legend);
    this.note = el("div", "nlv-note", "");
    this.grid = el("div", "nlv-grid");
    this.grid.tabIndex = 0;
    if (Number(h.labels.min_tile) > 0) this.grid.style.setProperty("--nlv-tile", `${Number(h.labels.min_tile)}px`);
    this.root.classList.toggle("nlv-compact", Number(h.labels.min_tile) > 0 && Number(h.labels.min_tile) < 120);
    this.grid.setAttribute("role", "application");
    this.grid.setAttribute("aria-label", "Attention in every frame: hover to preview a query, click to pin it, "
      + "arrow keys move the pinned query, PageUp/PageDown change its frame");
    this.canvases = [];
    for (let k = 0; k < h.atlas.count; k++) {
      const cell = el("figure", "nlv-cell");
      const cv = el("canvas", "nlv-frame");
      cv.width = tw; cv.height = th; cv.dataset.frame = String(k);
      const full = `frame ${k} (src ${h.source_frames[k]})`;
      const compact = Number(h.labels.min_tile) > 0 && Number(h.labels.min_tile) < 120;
      const cap = el("figcaption", "", compact ? `${k} · src ${h.source_frames[k]}` : full);
      cap.title = full;
      cell.append(cv, cap);
      this.grid.append(cell);
      this.canvases.push(cv);
      cv.addEventListener("pointermove", (e) => this.onMove(e, k));
      cv.addEventListener("click", (e) => this.onClick(e, k));
      // keyboard focus for the arrow keys, without the browser scrolling the (tall) grid into view
      cv.addEventListener("pointerdown", (e) => { e.preventDefault(); this.grid.focus({ preventScroll: true }); });
    }
    this.grid.addEventListener("pointerleave", () => { bus().hover.delete(this.group); publish(this.group); });
    this.grid.addEventListener("keydown", (e) => this.onKey(e));
    // key-grid slices drawn at key-grid size, scaled up with smoothing off
    const [tk, hk, wk] = h.key_shape;
    this.sliceCanvas = []; this.sliceImage = [];
    for (let t = 0; t < tk; t++) {
      const c = document.createElement("canvas"); c.width = wk; c.height = hk;
      this.sliceCanvas.push(c); this.sliceImage.push(c.getContext("2d").createImageData(wk, hk));
    }
    this.frameSlice = new Array(h.atlas.count).fill(-1);
    h.slices.forEach((s, t) => s.frames.forEach((k) => { if (k >= 0 && k < h.atlas.count) this.frameSlice[k] = t; }));
    this.root.append(top, this.grid, this.note);
    if (h.mode === "server") {
      this.note.textContent = `This block's factors (${(h.factor_bytes / 2 ** 20).toFixed(1)} MiB) exceed the browser's `
        + `budget of ${(h.budget_bytes / 2 ** 20).toFixed(0)} MiB: hovering moves the marker only; a click computes `
        + "the row on the server.";
    }
  }

  toFrame(e, k) {
    const cv = this.canvases[k];
    const [W, H] = this.header.geometry.frame_size;
    const r = cv.getBoundingClientRect();
    return { frame: k, x: ((e.clientX - r.left) / r.width) * W, y: ((e.clientY - r.top) / r.height) * H };
  }

  onMove(e, k) {
    const q = this.toFrame(e, k);
    bus().hover.set(this.group, { ...q, origin: this.id, frameSize: this.header.geometry.frame_size,
                                  sourceFrame: this.header.source_frames[k], at: performance.now() });
    publish(this.group);
  }

  onClick(e, k) {
    const q = this.toFrame(e, k);
    q.x = Math.round(q.x * 100) / 100; q.y = Math.round(q.y * 100) / 100;
    this.sendPin(q);
  }

  sendPin(q) {
    this.pin = { frame: q.frame, x: q.x, y: q.y };  // shown at once; the server's pins replace it when they arrive
    if (this.setTrigger) this.setTrigger("pin", { frame: q.frame, x: q.x, y: q.y, view: this.id });
    publish(this.group);
  }

  onKey(e) {
    if (!this.pin) return;
    const h = this.header, g = h.geometry;
    const cellW = g.input_size[0] / h.query_shape[2] / g.scale[0];
    const cellH = g.input_size[1] / h.query_shape[1] / g.scale[1];
    const [x0, y0, x1, y1] = g.crop_rect;
    let { frame, x, y } = this.pin;
    const moves = { ArrowLeft: [-cellW, 0], ArrowRight: [cellW, 0], ArrowUp: [0, -cellH], ArrowDown: [0, cellH] };
    if (moves[e.key]) { x += moves[e.key][0]; y += moves[e.key][1]; }
    else if (e.key === "PageUp") frame -= 1;
    else if (e.key === "PageDown") frame += 1;
    else return;
    e.preventDefault();
    frame = Math.min(Math.max(frame, 0), h.atlas.count - 1);
    x = Math.min(Math.max(x, x0 + 0.01), x1 - 0.01); y = Math.min(Math.max(y, y0 + 0.01), y1 - 0.01);
    this.sendPin({ frame, x: Math.round(x * 100) / 100, y: Math.round(y * 100) / 100 });
  }

  // the query this view shows: the group's hover (mapped to this clip), else the pin
  currentQuery() {
    const hv = bus().hover.get(this.group);
    if (hv && this.header.mode === "browser") {
      if (hv.origin === this.id) return { frame: hv.frame, x: hv.x, y: hv.y, source: "hover" };
      const src = this.header.source_frames;
      let k = src.indexOf(hv.sourceFrame);
      if (k < 0) k = src.reduce((best, s, i) => (Math.abs(s - hv.sourceFrame) < Math.abs(src[best] - hv.sourceFrame) ? i : best), 0);
      const [w0, h0] = hv.frameSize, [w, h] = this.header.geometry.frame_size;
      return { frame: k, x: (hv.x * w) / w0, y: (hv.y * h) / h0, source: "hover" };
    }
    const ctl = this.control;
    const pin = this.pin || (ctl.pins && ctl.pins[this.id]);
    return pin ? { frame: pin.frame, x: pin.x, y: pin.y, source: "pin" } : null;
  }

  // compute this view's row for the current query (phase 1 of a redraw); returns its [lo, hi]
  compute() {
    const t0 = performance.now();
    const h = this.header, ctl = this.control;
    const q = this.currentQuery();
    this.query = q; this.cell = null; this.shown = null; this.outside = null;
    if (!q) return null;
    const found = queryCell(h, q.frame, q.x, q.y);
    if (found.outside) { this.outside = found.outside; return null; }
    this.cell = found.cell;
    let row = null;
    if (h.mode === "browser") row = computeRow(this, found.cell);
    else {
      const srv = ctl.rows && ctl.rows[this.id];  // the server's row, for the query it was computed for
      if (srv && srv.frame === q.frame && srv.x === q.x && srv.y === q.y) {
        row = Float64Array.from(srv.values);
        this.extraWeight = Number.isFinite(srv.extra) ? srv.extra : null;
      }
    }
    this.row = row;
    if (!row) return null;
    const shown = Float64Array.from(row);
    const radius = ctl.hide_own;
    if (radius !== null && radius !== undefined) {
      const hide = hiddenKeys(h, found.cell, radius);
      for (let j = 0; j < shown.length; j++) if (hide[j]) shown[j] = NaN;
    }
    this.shown = shown;
    this.computeMs = performance.now() - t0;
    return extent(shown);
  }

  // phase 2: draw every frame with `scale` (this view's own, or the group's shared one)
  draw(scale) {
    const t0 = performance.now();
    const h = this.header, ctl = this.control;
    const style = ctl.style || "heat";
    if (!this.bitmap) return;
    const [tw, th] = h.atlas.tile, cols = h.atlas.columns;
    const [W, Hf] = h.geometry.frame_size;
    const fx = tw / W, fy = th / Hf;
    const [tk, hk, wk] = h.key_shape;
    this.scale = scale;
    const lut = scale && scale.signed ? this.arrays.lut_div : this.arrays.lut_seq;
    if (this.shown && scale) {
      for (let t = 0; t < tk; t++) {
        const img = this.sliceImage[t], d = img.data;
        for (let j = 0; j < hk * wk; j++) paint(d, j * 4, this.shown[t * hk * wk + j], scale, lut, style);
        this.sliceCanvas[t].getContext("2d").putImageData(img, 0, 0);
      }
    }
    const q = this.query;
    const [cx0, cy0, cx1, cy1] = h.geometry.crop_rect;
    const full = cx0 <= 0 && cy0 <= 0 && cx1 >= W && cy1 >= Hf;
    for (let k = 0; k < this.canvases.length; k++) {
      const ctx = this.canvases[k].getContext("2d");
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.bitmap, (k % cols) * tw, Math.floor(k / cols) * th, tw, th, 0, 0, tw, th);
      const t = this.frameSlice[k];
      ctx.fillStyle = "rgba(0,0,0,0.55)";
      if (t < 0) { ctx.fillRect(0, 0, tw, th); continue; }
      const [x0, y0, x1, y1] = h.slices[t].rect.map((v, i) => v * (i % 2 ? fy : fx));
      // outside what the keys cover (outside the crop): dimmed, uncoloured
      ctx.fillRect(0, 0, tw, y0); ctx.fillRect(0, y1, tw, th - y1);
      ctx.fillRect(0, y0, x0, y1 - y0); ctx.fillRect(x1, y0, tw - x1, y1 - y0);
      if (this.shown && scale) {
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(this.sliceCanvas[t], x0, y0, x1 - x0, y1 - y0);
      }
      if (this.cell && h.tokens && h.tokens.rule === "swin_window") {  // the query's window, in blue
        const [[t0, t1], [r0, r1], [c0, c1]] = windowBox(h, this.cell);
        if (t >= t0 && t < t1) {
          const cw = (x1 - x0) / wk, ch = (y1 - y0) / hk;
          ctx.strokeStyle = "#00c8ff"; ctx.lineWidth = 2;
          ctx.strokeRect(x0 + c0 * cw, y0 + r0 * ch, (c1 - c0) * cw, (r1 - r0) * ch);
        }
      }
      if (q && k === q.frame) {
        if (!full) {
          ctx.strokeStyle = "#ffd400"; ctx.lineWidth = 1.5;
          ctx.strokeRect(cx0 * fx, cy0 * fy, (cx1 - cx0) * fx, (cy1 - cy0) * fy);
        }
        drawMarker(ctx, q.x * fx, q.y * fy, Math.max(3, Math.min(tw, th) / 28));
      }
      this.canvases[k].parentElement.classList.toggle("nlv-query", Boolean(q && k === q.frame));
    }
    this.drawLegend(scale);
    this.drawStatus();
    this.stats.draws += 1;
    this.stats.lastMs = (this.computeMs || 0) + performance.now() - t0;
    const hv = bus().hover.get(this.group);
    if (hv && hv.at && hv.at !== this.lastHoverAt) {
      this.lastHoverAt = hv.at;
      this.stats.hoverMs.push(performance.now() - hv.at);
      if (this.stats.hoverMs.length > 1000) this.stats.hoverMs.shift();
    }
  }

  drawLegend(scale) {
    const ctx = this.bar.getContext("2d");
    const lut = scale && scale.signed ? this.arrays.lut_div : this.arrays.lut_seq;
    for (let i = 0; i < 160; i++) {
      const j = Math.floor((i / 159) * 255);
      ctx.fillStyle = `rgb(${lut[j * 3]},${lut[j * 3 + 1]},${lut[j * 3 + 2]})`;
      ctx.fillRect(i, 0, 1, 10);
    }
    if (!scale) { this.barText.textContent = ""; return; }
    const f = (v) => (Math.abs(v) >= 0.01 || v === 0 ? v.toPrecision(3) : v.toExponential(2));
    this.barText.textContent = scale.signed
      ? `f/N (not probabilities): ${f(scale.vmin)} · 0 · ${f(scale.vmax)}`
      : (this.header.signed ? `f/N (not probabilities): 0 … ${f(scale.vmax)}`
                            : `softmax weight (sums to 1): 0 … ${f(scale.vmax)}`);
  }

  drawStatus() {
    const hv = bus().hover.get(this.group);
    const q = this.header.mode === "server" && hv && hv.origin === this.id ? { ...hv, source: "hover" } : this.query;
    if (!q) { this.status.textContent = "Hover a frame to see where that pixel attends; click to pin it."; return; }
    const what = q.source === "hover" ? "Hover" : "Pinned";
    const where = `${what}: frame ${q.frame}, x ${q.x.toFixed(1)}, y ${q.y.toFixed(1)}`;
    if (this.outside) { this.status.textContent = `${where}: ${this.outside}.`; return; }
    const cell = this.cell ? ` · query cell (${this.cell.join(", ")})` : "";
    let tail = "";
    if (this.header.mode === "server") tail = q.source === "hover" ? " · click to compute this row on the server" : (this.shown ? "" : " · computing on the server…");
    this.status.textContent = where + cell + this.tokenText() + tail;
  }

  // heads and the weight on tokens off the grid (never drawn), for token attention
  tokenText() {
    const tk = this.header.tokens;
    if (!tk) return "";
    const sel = (this.control.heads || {})[this.id];
    let text = Number.isInteger(sel) ? ` · head ${sel} of ${tk.heads}` : (tk.heads > 1 ? ` · mean of ${tk.heads} heads` : "");
    if (tk.key_extra && this.shown && this.extraWeight !== null && this.extraWeight !== undefined) {
      text += ` · ${tk.extra_label || "extra tokens"}: ${(100 * this.extraWeight).toFixed(1)}% (not drawn)`;
    }
    return text;
  }

  redraw() { publish(this.group); }

  // for tests and the console: the row this view computes for displayed frame k, pixel (x, y)
  rowAt(frame, x, y, radius = null) {
    const found = queryCell(this.header, frame, x, y);
    if (found.outside) return { outside: found.outside };
    if (this.header.mode !== "browser") return { cell: found.cell, row: null };
    const row = computeRow(this, found.cell);
    let hidden = null;
    if (radius !== null) hidden = Array.from(hiddenKeys(this.header, found.cell, radius));
    return { cell: found.cell, row: Array.from(row), hidden, extra: this.header.tokens ? this.extraWeight : null };
  }
}

// one redraw of every view of a group per animation frame: rows first, then shared scales, then drawing
function publish(group) {
  const b = bus();
  if (b.frameRequested.has(group)) return;
  b.frameRequested.add(group);
  requestAnimationFrame(() => {
    b.frameRequested.delete(group);
    const views = [...b.views.values()].filter((v) => v.group === group && v.root.isConnected);
    const ext = new Map();
    for (const v of views) ext.set(v, v.compute());
    const shared = (b.control.get(group) || {}).shared;
    const byKind = new Map();
    if (shared) {
      for (const [v, e] of ext) {
        if (!e) continue;
        const kind = v.header.signed ? "signed" : "softmax";
        const cur = byKind.get(kind) || [Infinity, -Infinity];
        byKind.set(kind, [Math.min(cur[0], e[0]), Math.max(cur[1], e[1])]);
      }
    }
    for (const [v, e] of ext) {
      const kind = v.header.signed ? "signed" : "softmax";
      const range = shared && byKind.has(kind) ? byKind.get(kind) : e;
      v.draw(range ? valueRange(range[0], range[1], v.header.signed) : null);
    }
  });
}

// ---------------------------------------------------------------------------------- Streamlit entry point

function headerText(u8) {
  const n = new DataView(u8.buffer, u8.byteOffset, 12).getUint32(8, true);
  return new TextDecoder().decode(u8.subarray(12, 12 + n));
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".nlv-root");
  if (!root || !data) return;
  const b = bus();
  if (!b.listening) {  // the control component (a separate module) announces new state with this event
    b.listening = true;
    window.addEventListener("nlviz-control", (e) => {
      for (const v of b.views.values()) if (v.group === e.detail) v.pin = null;
      publish(e.detail);
    });
  }
  const u8 = data instanceof Uint8Array ? data : new Uint8Array(data);
  let view = root.__nlvizView;
  let text;
  try {
    text = headerText(u8);
    if (!view || view.headerText !== text) {
      view = new View(root, u8);
      view.headerText = text;
      root.__nlvizView = view;
      root.dataset.view = view.id;
    }
  } catch (err) {
    root.replaceChildren(el("div", "nlv-error", `The attention view could not read its data: ${err.message}`));
    return;
  }
  b.views.set(view.id, view);
  view.setTrigger = setTriggerValue;
  view.redraw();
}
