#!/bin/sh
#
# mailhook-entrypoint — the container image's entrypoint (Dockerfile).
#
# Before mailhook-ingest, mailhook-worker or mailhook-api starts, runs
# `mailhook config check` on the config file the program is given (--config FILE, else
# $MAILHOOK_CONFIG): a broken file stops the container with every problem listed as
# FILE:LINE: problem, instead of the program's first one. Then it execs the command, so
# the program is PID 1 and gets the signals. Any other command (the CLI, sh -c ...) runs
# unchecked, as do --help and --version.
set -eu

case "${1:-}" in
mailhook-ingest | mailhook-worker | mailhook-api)
  config=${MAILHOOK_CONFIG:-/etc/mailhook/mailhook.ini}
  check=1
  prev=
  for arg in "$@"; do
    case $prev in
    --config | -c) config=$arg ;;
    esac
    case $arg in
    --config=*) config=${arg#--config=} ;;
    --help | -h | --version | -V) check=0 ;;
    esac
    prev=$arg
  done
  if [ "$check" = 1 ]; then
    mailhook config check --config "$config" --for "${1#mailhook-}" ||
      {
        echo "mailhook-entrypoint: not starting $1: $config has the problems above" >&2
        exit 1
      }
  fi
  ;;
esac
exec "$@"
