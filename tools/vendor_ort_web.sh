#!/usr/bin/env bash
# Fetch onnxruntime-web (the wasm build: one thread, no SharedArrayBuffer needed) into book/_vendor/onnxruntime-web/,
# for the drawing pad of the published book (chapter 07). Its 14 MB wasm binary is not committed: `make html` and
# `make book-check` run this when the folder is missing. Pinned version, files checked against their SHA-256.
set -euo pipefail
ORT_WEB=1.30.0
declare -A SHA256=(
  [ort.wasm.bundle.min.mjs]=11e64bd8ffe11bd1a2a2f0d6275fdfbbba7262f0b76b99b53d228a8a22ef3d90
  [ort-wasm-simd-threaded.wasm]=3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2
)
command -v npm >/dev/null || { echo "vendor_ort_web.sh: npm is needed to fetch onnxruntime-web (apt-get install npm)" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/book/_vendor/onnxruntime-web"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "onnxruntime-web@$ORT_WEB" >/dev/null
tar xzf "onnxruntime-web-$ORT_WEB.tgz"
mkdir fetched
for f in "${!SHA256[@]}"; do
  cp "package/dist/$f" fetched/
  echo "${SHA256[$f]}  fetched/$f" | sha256sum --check --quiet - \
    || { echo "vendor_ort_web.sh: $f of onnxruntime-web $ORT_WEB has an unexpected checksum" >&2; exit 2; }
done
echo "onnxruntime-web $ORT_WEB: MIT licence (package.json; the package ships no LICENSE file)" > fetched/LICENSE
rm -rf "$out.tmp" && mv fetched "$out.tmp" && rm -rf "$out" && mv "$out.tmp" "$out"
echo "fetched onnxruntime-web $ORT_WEB into $out"
