#!/bin/sh
set -e
echo "installed files:"
ls -l /tmp/opendeploy-sample/app /tmp/opendeploy-sample/app/bin
"$(dirname "$0")/record.sh"
