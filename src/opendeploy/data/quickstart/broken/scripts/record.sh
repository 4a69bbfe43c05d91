#!/bin/sh
# Append "<event> <deployment id>" to this host's events.log (QUICKSTART_HOST_DIR is set per
# agent by `opendeploy quickstart`; elsewhere the log goes to /tmp/opendeploy-quickstart/host).
dir="${QUICKSTART_HOST_DIR:-/tmp/opendeploy-quickstart/host}"
mkdir -p "$dir"
echo "$LIFECYCLE_EVENT $DEPLOYMENT_ID" >> "$dir/events.log"
