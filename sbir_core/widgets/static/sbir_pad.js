// The drawing pad of sbir_core (chapter 07): one ES module, used two ways with no build step.
//  * In a notebook it is the front end of the anywidget `sbir_core.widgets.SketchPad` (default export `render`):
//    strokes go to the kernel, which ranks the gallery and sends back `results`.
//  * In the published book `sbir_pad_book.js` imports `createPad` and `modelInput` and ranks in the browser.
// Coordinates are those of the QMUL frame (256 x 256, origin top left); every point is [x, y, t], t in ms since the
// sketch's first point. `rasterize` and `modelInput` reproduce sbir_core.data.render bit for bit (tested).

export const FRAME = 256;

// np.round: half to even.
function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : r;
}

// sbir_core.data.render.bresenham: both ends included, the same pixel order.
function bresenham(x0, y0, x1, y1, plot) {
  let dx = x1 - x0, dy = y1 - y0;
  const xs = dx > 0 ? 1 : -1, ys = dy > 0 ? 1 : -1;
  dx = Math.abs(dx); dy = Math.abs(dy);
  let xx = xs, xy = 0, yx = 0, yy = ys;
  if (dx <= dy) { [dx, dy] = [dy, dx]; xx = 0; xy = ys; yx = xs; yy = 0; }
  let d = 2 * dy - dx, y = 0;
  for (let x = 0; x <= dx; x++) {
    plot(x0 + x * xx + y * yx, y0 + x * xy + y * yy);
    if (d >= 0) { y += 1; d -= 2 * dx; }
    d += 2 * dy;
  }
}

// The dilated ink of the strokes on the 256 frame (render_reference): Uint8Array, 1 = ink.
export function rasterize(strokes, canvas = FRAME) {
  const line = new Uint8Array(canvas * canvas);
  const plot = (x, y) => { if (x > 0 && y > 0 && x < canvas && y < canvas) line[y * canvas + x] = 1; };
  for (const stroke of strokes) {
    let px = null, py = null;
    for (const [x, y] of stroke) {
      const ix = roundHalfEven(x), iy = roundHalfEven(y);
      bresenham(px === null ? ix : px, py === null ? iy : py, ix, iy, plot);
      px = ix; py = iy;
    }
  }
  const ink = new Uint8Array(canvas * canvas);  // binary dilation with the 3 x 3 cross
  for (let y = 0; y < canvas; y++) {
    for (let x = 0; x < canvas; x++) {
      const i = y * canvas + x;
      ink[i] = line[i] | (x > 0 && line[i - 1]) | (x < canvas - 1 && line[i + 1])
        | (y > 0 && line[i - canvas]) | (y < canvas - 1 && line[i + canvas]);
    }
  }
  return ink;
}

// Area-downsampling to `size`, then uint8 as SplitTensors stores it: the float32 operations of PyTorch's area
// interpolation (sum / kh / kw) or, when size divides the frame, of render._coverage (count / f^2), then
// round(v * 255).
export function downsample(ink, size, canvas = FRAME) {
  const f32 = Math.fround, out = new Uint8Array(size * size);
  const exact = canvas % size === 0;
  const win = (i) => [Math.floor((i * canvas) / size), Math.ceil(((i + 1) * canvas) / size)];
  for (let i = 0; i < size; i++) {
    const [r0, r1] = win(i);
    for (let j = 0; j < size; j++) {
      const [c0, c1] = win(j);
      let sum = 0;
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) sum += ink[r * canvas + c];
      const kh = r1 - r0, kw = c1 - c0;
      const share = exact ? f32(sum / (kh * kw)) : f32(f32(sum / kh) / kw);
      out[i * size + j] = roundHalfEven(f32(share * 255));
    }
  }
  return out;
}

// The network input of a sketch: the centre crop of side `inputSize` (eval_views) of the uint8 raster, as float32
// values 0-255 (the exported encoder does the rest: sbir_core.models.embedding.sketch_input).
export function modelInput(strokes, dataSize, inputSize) {
  const small = downsample(rasterize(strokes), dataSize);
  const c = Math.floor((dataSize - inputSize) / 2), out = new Float32Array(inputSize * inputSize);
  for (let r = 0; r < inputSize; r++) {
    for (let k = 0; k < inputSize; k++) out[r * inputSize + k] = small[(r + c) * dataSize + c + k];
  }
  return out;
}

const CSS = `
.sbir-pad-root { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; font: 13px sans-serif; }
.sbir-pad-col { display: flex; flex-direction: column; gap: 6px; }
.sbir-pad-canvas { border: 0; outline: 1px solid #999; background: #fff; touch-action: none; cursor: crosshair;
  max-width: none; flex: none; user-select: none; }
.sbir-pad-status { overflow-wrap: anywhere; }
.sbir-pad-ref { outline: 1px solid #ccc; }
.sbir-pad-top { display: flex; gap: 4px; }
.sbir-pad-top figure { margin: 0; text-align: center; font-size: 11px; }
.sbir-pad-top img { width: 64px; height: 64px; outline: 1px solid #ccc; image-rendering: pixelated; }
.sbir-pad-top img.match { outline: 3px solid #2a2; }
.sbir-pad-buttons button { margin-right: 4px; }
`;

function element(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

// A small SVG plot of the target's rank against the stroke number (rank 1 at the top).
function rankPlot(history, gallerySize) {
  const w = 220, h = 120, l = 34, b = 26, t = 8, r = 8;
  const n = Math.max(history.length, 2), maxRank = Math.max(gallerySize, 2);
  const sx = (i) => l + ((i - 1) / (n - 1)) * (w - l - r);
  const sy = (v) => t + (Math.log(v) / Math.log(maxRank)) * (h - t - b);  // log scale
  const pts = history.map((v, i) => `${sx(i + 1).toFixed(1)},${sy(v).toFixed(1)}`).join(" ");
  const ticks = [1, 10, 100, 1000].filter((v) => v <= maxRank);
  return `<svg width="${w}" height="${h}" role="img" aria-label="rank of the target photo after each stroke">
    <line x1="${l}" y1="${h - b}" x2="${w - r}" y2="${h - b}" stroke="#666"/>
    <line x1="${l}" y1="${t}" x2="${l}" y2="${h - b}" stroke="#666"/>
    ${ticks.map((v) => `<text x="${l - 4}" y="${sy(v) + 4}" text-anchor="end" font-size="10">${v}</text>`).join("")}
    <text x="${(l + w - r) / 2}" y="${h - 4}" text-anchor="middle" font-size="11">stroke</text>
    <text x="10" y="${(t + h - b) / 2}" text-anchor="middle" font-size="11"
      transform="rotate(-90 10 ${(t + h - b) / 2})">target rank (log)</text>
    <polyline points="${pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>
    ${history.map((v, i) => `<circle cx="${sx(i + 1)}" cy="${sy(v)}" r="2.5" fill="#1f77b4"/>`).join("")}
  </svg>`;
}

// Build the pad inside `el`. `onStrokes(strokes)` is called after every finished stroke, undo and clear.
export function createPad(el, { size = 256, photo = "", onStrokes = () => {} } = {}) {
  if (!document.getElementById("sbir-pad-css")) element("style", { id: "sbir-pad-css", text: CSS }, document.head);
  el.innerHTML = "";
  const root = element("div", { class: "sbir-pad-root" }, el);
  const left = element("div", { class: "sbir-pad-col", style: `width: ${size}px` }, root);
  const canvas = element("canvas", {
    class: "sbir-pad-canvas", width: size, height: size, "data-testid": "sbir-pad-canvas",
    style: `width: ${size}px; height: ${size}px`,
  }, left);
  const buttons = element("div", { class: "sbir-pad-buttons" }, left);
  const undo = element("button", { text: "Undo", type: "button" }, buttons);
  const clear = element("button", { text: "Clear", type: "button" }, buttons);
  const status = element("div", { class: "sbir-pad-status", text: "Draw the photo on the right." }, left);
  const right = element("div", { class: "sbir-pad-col" }, root);
  const ref = element("img", { class: "sbir-pad-ref", width: 128, height: 128, alt: "the target photo" }, right);
  if (photo) ref.src = photo; else ref.style.display = "none";
  const plot = element("div", { class: "sbir-pad-plot" }, right);
  const top = element("div", { class: "sbir-pad-top", "data-testid": "sbir-pad-top" }, el);
  const ctx = canvas.getContext("2d");
  let strokes = [], current = null, t0 = null;

  const toFrame = (e) => {
    const box = canvas.getBoundingClientRect();
    const q = (v) => Math.round(v * 100) / 100;  // 0.01 px: exact in JSON, far below a pixel
    return [q(((e.clientX - box.left) * FRAME) / box.width), q(((e.clientY - box.top) * FRAME) / box.height)];
  };
  const redraw = () => {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
    ctx.strokeStyle = "#000"; ctx.lineWidth = (3 * size) / FRAME; ctx.lineCap = ctx.lineJoin = "round";
    for (const s of current ? [...strokes, current] : strokes) {
      ctx.beginPath();
      s.forEach(([x, y], i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, (x * size) / FRAME, (y * size) / FRAME));
      if (s.length === 1) ctx.lineTo((s[0][0] * size) / FRAME + 0.01, (s[0][1] * size) / FRAME);
      ctx.stroke();
    }
  };
  const stamp = (e) => {
    if (t0 === null) t0 = e.timeStamp;
    return Math.round(e.timeStamp - t0);
  };
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();  // no text selection or scrolling while drawing
    canvas.setPointerCapture(e.pointerId);
    current = [[...toFrame(e), stamp(e)]];
    redraw();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const c of events.length ? events : [e]) current.push([...toFrame(c), stamp(c)]);
    requestAnimationFrame(redraw);
  });
  const finish = () => {
    if (!current) return;
    strokes = [...strokes, current];
    current = null;
    redraw();
    onStrokes(strokes);
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  undo.addEventListener("click", () => { strokes = strokes.slice(0, -1); redraw(); onStrokes(strokes); });
  clear.addEventListener("click", () => { strokes = []; t0 = null; redraw(); onStrokes(strokes); });
  redraw();

  return {
    canvas,
    get strokes() { return strokes; },
    setStrokes(s) {  // new points continue the loaded sketch's clock
      strokes = s.map((stroke) => stroke.map((p) => [...p]));
      const last = strokes.length ? strokes[strokes.length - 1].at(-1)[2] : null;
      t0 = last === null ? null : performance.now() - last;
      redraw();
    },
    setStatus(text) { status.textContent = text; },
    // results: {n_strokes, rank, gallery_size, history, top: [{src, match, label}], ms}
    showResults(res) {
      if (!res || !res.top) {
        top.innerHTML = ""; plot.innerHTML = "";
        if (res && res.error) status.textContent = res.error;
        return;
      }
      top.innerHTML = "";
      for (const [i, item] of res.top.entries()) {
        const fig = element("figure", {}, top);
        const img = element("img", { src: item.src, alt: item.label || `match ${i + 1}` }, fig);
        if (item.match) img.classList.add("match");
        element("figcaption", { text: `${i + 1}${item.match ? " (target)" : ""}` }, fig);
      }
      plot.innerHTML = res.history && res.history.length ? rankPlot(res.history, res.gallery_size) : "";
      status.textContent = res.n_strokes
        ? `after stroke ${res.n_strokes}: the target is ranked ${res.rank} of ${res.gallery_size} `
          + `(${res.ms.toFixed(1)} ms)`
        : "Draw the photo on the right.";
      status.dataset.rank = res.rank;
    },
  };
}

// anywidget front end: strokes go to Python; Python's `results` come back.
function render({ model, el }) {
  const pad = createPad(el, {
    size: model.get("size"),
    photo: model.get("photo"),
    onStrokes: (strokes) => {
      pad.setStatus(strokes.length ? "ranking…" : "Draw the photo on the right.");
      model.set("strokes", strokes);
      model.save_changes();
    },
  });
  pad.setStrokes(model.get("strokes"));
  pad.showResults(model.get("results"));
  const onStrokes = () => pad.setStrokes(model.get("strokes"));
  const onResults = () => pad.showResults(model.get("results"));
  model.on("change:strokes", onStrokes);
  model.on("change:results", onResults);
  return () => { model.off("change:strokes", onStrokes); model.off("change:results", onResults); };
}

export default { render };
