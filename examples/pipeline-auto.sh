#!/usr/bin/env bash
# The automatic path from scanner to research PACS, as FIONA ran it at MMIV Bergen:
#
#   scanner --C-STORE--> fiona-receive | fiona-classify | fiona-detect-study | fiona-route
#                                                          (transfer requests in <site>/state/requests/)
#   fiona-transfer (here --watch; or from cron, see examples/crontab.transfer)
#                  --de-identified--> research PACS (dicom://) or data centre (sftp://)
#
# Nothing is typed after the scanner sends: completed studies are routed by the rules in
# $ROUTES (examples/routes.json), de-identified per project, sent, and the results kept in
# <site>/state/transfers/ (fiona-transfer --list shows them).
#
# Usage: pipeline-auto.sh            (environment: SITE ROUTES PORT AET QUIET TRANSFER)
#   TRANSFER=watch  run fiona-transfer --watch beside the pipeline (default)
#   TRANSFER=cron   leave transfers to cron (examples/crontab.transfer)
# Stop with SIGTERM/Ctrl-C: the receiver finishes what is in flight, the rest drains.
set -euo pipefail

SITE=${SITE:-/data/site}
ROUTES=${ROUTES:-/etc/fiona/routes.json}
PORT=${PORT:-11112}
AET=${AET:-FIONA}
QUIET=${QUIET:-16s}          # FIONA waited 16 s after the last image of a study
TRANSFER=${TRANSFER:-watch}
LOG=${LOG:-$SITE/state/log}

mkdir -p "$LOG"
# Refuse to start on a broken rules file (exit 2 names the entry) rather than fail later.
fiona-route --routes "$ROUTES" --check

pids=()
stop() {
  # Only the processes started here, by pid.
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
trap stop TERM INT

if [ "$TRANSFER" = watch ]; then
  fiona-transfer --site "$SITE" --routes "$ROUTES" --watch --interval 10s \
    >>"$LOG/transfer.ndjson" 2>>"$LOG/transfer.log" &
  pids+=($!)
fi

# The receiver is the head of the pipe: stopping it (by its pid) lets every later stage
# drain and exit. Process substitution keeps its pid in $!.
fiona-receive --site "$SITE" --port "$PORT" --aet "$AET" 2>>"$LOG/receive.log" > >(
  fiona-classify --site "$SITE" 2>>"$LOG/classify.log" \
  | fiona-detect-study --site "$SITE" --quiet "$QUIET" 2>>"$LOG/detect-study.log" \
  | fiona-route --site "$SITE" --routes "$ROUTES" 2>>"$LOG/route.log" \
  >>"$LOG/route.ndjson"
) &
pids=("$!" "${pids[@]}")

# A trapped signal ends the first wait early; the second lets the stages drain and exit.
# (Bash 5.1 and later also wait for the process substitution.)
wait || true
wait || true
