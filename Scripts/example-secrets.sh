#!/usr/bin/env bash
# Writes dummy secrets for config.example.json into a fresh temporary credentials directory (the layout
# systemd's LoadCredential= produces) and prints the line that points deltahook at it:
#
#   eval "$(Scripts/example-secrets.sh)"
#   .build/debug/deltahook check-config --config config.example.json
#
# The values are random and useless against any real service.
set -euo pipefail
dir="$(mktemp -d "${TMPDIR:-/tmp}/deltahook-credentials.XXXXXX")"
chmod 0700 "$dir"
umask 0077
rand() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+=' ; }
for name in snow-client-secret snow-refresh-token ns-consumer-key ns-consumer-secret ns-token-id \
            ns-token-secret github-token orders-api-key zoho-client-secret zoho-refresh-token; do
    printf 'dummy-%s\n' "$(rand 24)" > "$dir/$name"
done
printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" > "$dir/crm-webhook-secret"
echo "export CREDENTIALS_DIRECTORY=$dir"
