#!/bin/sh
echo "preparing for deployment $DEPLOYMENT_ID of $APPLICATION_NAME"
sleep "${QUICKSTART_PACE:-0.3}"
"$(dirname "$0")/record.sh"
