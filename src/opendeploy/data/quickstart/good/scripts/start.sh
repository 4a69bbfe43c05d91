#!/bin/sh
echo "starting version $(cat "$(dirname "$0")/../site/VERSION")"
sleep "${QUICKSTART_PACE:-0.3}"
"$(dirname "$0")/record.sh"
