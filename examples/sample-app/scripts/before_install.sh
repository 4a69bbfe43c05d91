#!/bin/sh
set -e
mkdir -p /tmp/opendeploy-sample
echo "preparing /tmp/opendeploy-sample for deployment $DEPLOYMENT_ID"
"$(dirname "$0")/record.sh"
