#!/bin/sh
echo "site installed: $(ls "$(dirname "$0")/../site" | tr '\n' ' ')"
"$(dirname "$0")/record.sh"
