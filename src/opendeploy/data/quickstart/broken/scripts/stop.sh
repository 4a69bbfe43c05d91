#!/bin/sh
echo "stopping the old version (if any)"
"$(dirname "$0")/record.sh"
