// The drawing pad of the published book: no kernel, the sketch encoder runs in the browser (onnxruntime-web, wasm,
// one thread). Every element with class "sbir-pad" becomes a pad over the gallery that `make book` exported
// (sbir_core.widgets.export_book_pad → _static/pad/). Loaded on every page; a page without a pad is left alone.
import { createPad, modelInput } from "./sbir_pad.js";

const FORMAT = 1;
const assets = new URL("./pad/", import.meta.url);
let ort = null;  // onnxruntime-web, imported only on a page with a pad

async function loadRuntime() {
  if (!ort) {
    ort = await import("./onnxruntime-web/ort.wasm.bundle.min.mjs");
    ort.env.wasm.numThreads = 1;
    // the wasm binary beside the bundle, whose own JavaScript glue is built in
    ort.env.wasm.wasmPaths = { wasm: new URL("./onnxruntime-web/ort-wasm-simd-threaded.wasm", import.meta.url).href };
  }
  return ort;
}

function floats(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

// Retriever.rank, in the browser: rasterise, embed, rank by the triplet loss's (squared) Euclidean distance.
export class BookRetriever {
  constructor(gallery, session) {
    this.g = gallery;
    this.session = session;
    this.emb = floats(gallery.embeddings);
    this.n = this.emb.length / gallery.dim;
    this.norms = Array.from({ length: this.n }, (_, i) => {
      let s = 0;
      for (let k = 0; k < gallery.dim; k++) s += this.emb[i * gallery.dim + k] ** 2;
      return s;
    });
  }

  async embed(strokes) {
    const { data_size: side, input_size: size } = this.g;
    const crop = new ort.Tensor("float32", modelInput(strokes, side, size), [1, size, size]);
    return (await this.session.run({ crop })).embedding.data;
  }

  async rank(strokes) {
    const start = performance.now();
    const q = await this.embed(strokes);
    const d = this.g.dim;
    let qq = 0;
    for (let k = 0; k < d; k++) qq += q[k] * q[k];
    const distances = this.norms.map((nn, i) => {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += q[k] * this.emb[i * d + k];
      const d2 = Math.max(qq + nn - 2 * dot, 0);
      return this.g.squared ? d2 : Math.sqrt(d2);
    });
    const order = distances.map((_, i) => i).sort((a, b) => distances[a] - distances[b]);
    return { order, distances, rank: order.indexOf(this.g.target) + 1, ms: performance.now() - start };
  }
}

async function boot(el) {
  const response = await fetch(new URL("gallery.json", assets));
  if (!response.ok) {
    el.textContent = "The drawing pad's model was not exported: run `make book` to build it.";
    return null;
  }
  const gallery = await response.json();
  if (gallery.format !== FORMAT) throw new Error(`gallery.json format ${gallery.format}, expected ${FORMAT}`);
  await loadRuntime();
  const session = await ort.InferenceSession.create(new URL("encoder.onnx", assets).href,
    { executionProviders: ["wasm"] });
  const retriever = new BookRetriever(gallery, session);
  let history = [], busy = false, pending = null;
  const show = async (strokes) => {  // throttled: strokes drawn while ranking are ranked once, afterwards
    if (busy) { pending = strokes; return; }
    busy = true;
    try {
      if (!strokes.length) { history = []; pad.showResults({ n_strokes: 0, top: [] }); return; }
      const r = await retriever.rank(strokes);
      history = [...history.slice(0, strokes.length - 1), r.rank];
      pad.showResults({
        n_strokes: strokes.length, rank: r.rank, gallery_size: retriever.n, history, ms: r.ms,
        top: r.order.slice(0, gallery.top_k).map((i) => (
          { src: gallery.thumbnails[i], match: i === gallery.target, label: gallery.names[i] })),
      });
      el.dataset.order = JSON.stringify(r.order);
      el.dataset.strokes = String(strokes.length);
    } finally {
      busy = false;
      if (pending) { const next = pending; pending = null; show(next); }
    }
  };
  const pad = createPad(el, { photo: gallery.photo, onStrokes: show });
  pad.setStatus("Draw the photo on the right: the gallery is ranked in your browser after every stroke.");
  return { pad, retriever };
}

const pads = document.querySelectorAll(".sbir-pad");
// For the browser tests and the curious: window.sbirPads resolves to [{pad, retriever}] once the model is loaded.
window.sbirPads = Promise.all(Array.from(pads, (el) => boot(el).catch((error) => {
  el.textContent = `The drawing pad failed to load: ${error}`;
  return null;
})));
