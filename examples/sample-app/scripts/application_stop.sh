#!/bin/sh
# Runs from the previous revision: stop what it started.
set -e
rm -f /tmp/opendeploy-sample/running
echo "stopped the previous revision of $APPLICATION_NAME"
"$(dirname "$0")/record.sh"
