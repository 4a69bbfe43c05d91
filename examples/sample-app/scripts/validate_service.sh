#!/bin/sh
# Fail the deployment unless the site is in place and the helper is executable.
set -e
test -f /tmp/opendeploy-sample/app/index.html
test -x /tmp/opendeploy-sample/app/bin/status.sh
test -f /tmp/opendeploy-sample/running
echo "service is valid"
"$(dirname "$0")/record.sh"
