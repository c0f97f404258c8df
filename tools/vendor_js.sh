#!/usr/bin/env bash
# Re-create book/_vendor/ from the npm registry: the JavaScript the built book needs to render maths and embedded
# widgets with no network (MathJax 3, require.js, @jupyter-widgets/html-manager). The result is committed, so neither
# `make book` nor `make test` runs this; run it only to change a version below.
set -euo pipefail
MATHJAX=3.2.2 REQUIREJS=2.3.8 HTML_MANAGER=1.0.15
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/book/_vendor"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "mathjax@$MATHJAX" "requirejs@$REQUIREJS" "@jupyter-widgets/html-manager@$HTML_MANAGER" >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
rm -rf "$out.tmp" && mkdir -p "$out.tmp/mathjax/output/chtml/fonts" "$out.tmp/html-manager"
mj="mathjax-$MATHJAX/package"
cp "$mj/es5/tex-mml-chtml.js" "$out.tmp/mathjax/"
cp -r "$mj/es5/output/chtml/fonts/woff-v2" "$out.tmp/mathjax/output/chtml/fonts/"
cp "$mj/LICENSE" "$out.tmp/mathjax/LICENSE"
cp "requirejs-$REQUIREJS/package/require.js" "$out.tmp/require.js"
hm="jupyter-widgets-html-manager-$HTML_MANAGER/package"
cp "$hm/dist/embed-amd.js" "$hm/dist/"*.woff2 "$hm/dist/embed.js.LICENSE.txt" "$out.tmp/html-manager/"
cp "$hm/LICENSE" "$out.tmp/html-manager/LICENSE" 2>/dev/null || true
printf 'mathjax %s\nrequirejs %s\n@jupyter-widgets/html-manager %s\n' "$MATHJAX" "$REQUIREJS" "$HTML_MANAGER" > "$out.tmp/VERSIONS"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "vendored into $out"
