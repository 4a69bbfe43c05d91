#!/bin/sh
# A load balancer would take this host out of (or put it back into) service here.
echo "$LIFECYCLE_EVENT: no load balancer in the sample, nothing to do"
"$(dirname "$0")/record.sh"
