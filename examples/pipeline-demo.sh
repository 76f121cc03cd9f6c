#!/usr/bin/env bash
# The classify step on the built-in sample, for the demo (npm run demo can call this):
# fiona-synth makes two patients' MR studies, fiona-classify sorts and classifies them into a
# fresh site (as it would after fiona-receive), fiona-detect-study --scan reports the studies,
# and a table shows each series with the types the shipped rules gave it.
#
# Usage: pipeline-demo.sh [DIR]     (DIR: where to put the sample and the site; default a temp dir)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/bin
dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/fiona-demo-classify.XXXXXX")}
site=$dir/site

"$bin/fiona-synth" --out "$dir/sample" --patients 2 --instances 8 --rows 64 --quiet
# Store the sample as fiona-receive would: archive/<Study>/<Series>/<SOP>.dcm
find "$dir/sample" -name '*.dcm' | while read -r f; do
  rel=${f#"$dir/sample/"}; rel=${rel#*/}          # drop the PatientID folder
  mkdir -p "$site/archive/$(dirname "$rel")"
  cp "$f" "$site/archive/$rel"
done

echo "== fiona-classify --site $site $site/archive"
"$bin/fiona-classify" --site "$site" "$site/archive" > "$dir/classified.ndjson"
echo "== fiona-detect-study --site $site --scan --quiet 0s"
"$bin/fiona-detect-study" --site "$site" --scan --quiet 0s > "$dir/studies.ndjson"

echo
printf '%-44s %-26s %5s  %s\n' "study" "series" "files" "ClassifyType"
for m in "$site"/studies/*.json; do
  node -e '
    const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const s of m.series) {
      console.log(`${m.study.slice(0, 44).padEnd(44)} ${String(s.SeriesDescription ?? s.series).slice(0, 26).padEnd(26)} ${String(s.instances).padStart(5)}  ${s.types.join(",")}`);
    }' "$m"
done
echo
echo "site: $site  (raw/, participants/, studies/; events in $dir/*.ndjson)"
