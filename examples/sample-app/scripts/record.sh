#!/bin/sh
# Shared by the hooks: append "<time> <event> <deployment id>" to the proof log.
mkdir -p /tmp/opendeploy-sample
echo "$(date '+%Y-%m-%dT%H:%M:%S') $LIFECYCLE_EVENT $DEPLOYMENT_ID" >> /tmp/opendeploy-sample/events.log
