#!/usr/bin/env bash
# FIONA's pipeline as one shell line: receive, classify, decide when a study is complete.
#
#   scanner --C-STORE--> fiona-receive | fiona-classify | fiona-detect-study --> studies/<Study>.json
#
# Each stage reads the previous stage's NDJSON events on stdin and writes its own on stdout;
# logs go to stderr. The last stage's events (study-complete, study-updated, study-exec) are
# appended to $SITE/state/studies.ndjson; ON_STUDY, if set, runs once per complete study
# with the manifest path as its last argument.
#
# Usage: pipeline-classify.sh     (environment: SITE PORT AET QUIET RULES ON_STUDY)
# Stop: SIGTERM to fiona-receive lets every later stage drain and exit; SIGTERM to the whole
# process group (or Ctrl-C) stops each stage at once, with nothing half-written (instances
# not yet classified are picked up by a backfill: fiona-classify --site $SITE $SITE/archive).
set -euo pipefail

SITE=${SITE:-/data/site}
PORT=${PORT:-11112}
AET=${AET:-FIONA}
QUIET=${QUIET:-16s}                  # FIONA waited 16 s after the last image of a study
RULES=${RULES:-}                     # a site's classifyRules.json; default: fiona's shipped rules
ON_STUDY=${ON_STUDY:-}               # e.g. /usr/local/bin/on-study

rules=()
[ -n "$RULES" ] && rules=(--rules "$RULES")
# Refuse to start on a broken rule file (exit 2 names the entry and field).
fiona-classify "${rules[@]}" --check

exec_args=()
[ -n "$ON_STUDY" ] && exec_args=(--exec "$ON_STUDY")

mkdir -p "$SITE/state"
fiona-receive --site "$SITE" --port "$PORT" --aet "$AET" \
  | fiona-classify --site "$SITE" "${rules[@]}" --quiet \
  | fiona-detect-study --site "$SITE" --quiet "$QUIET" "${exec_args[@]}" \
  >>"$SITE/state/studies.ndjson"
