#!/bin/sh
set -e
/tmp/opendeploy-sample/app/bin/status.sh > /tmp/opendeploy-sample/running
echo "started: $(cat /tmp/opendeploy-sample/running)"
"$(dirname "$0")/record.sh"
