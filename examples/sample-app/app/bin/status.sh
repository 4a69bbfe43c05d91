#!/bin/sh
# Prints the sample application's status line.
echo "sample app $(sed -n 's/.*"greeting": "\([a-z]*\)".*/\1/p' /tmp/opendeploy-sample/app/config.json) running"
