#!/bin/sh
# The health check: the bundle's VERSION file must hold a number.
version="$(cat "$(dirname "$0")/../site/VERSION")"
echo "checking health of version $version"
"$(dirname "$0")/record.sh"
case "$version" in
  ''|*[!0-9]*) echo "health check failed: VERSION is '$version', not a number" >&2; exit 1 ;;
esac
echo "healthy"
