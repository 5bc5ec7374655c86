#!/bin/sh
# The nightly backup of the sales engine: archive the configured folders, check the new
# archive, then apply the retention rule (7 daily, 4 weekly, 12 monthly by default).
# A step that fails stops the job with that step's exit code, so a backup that does not
# verify never lets prune delete the older good ones. Run by sales-engine-backup.service
# (systemd) or by the crontab line in this folder.
set -eu

ENGINE="${ENGINE:-/opt/sales-engine/.venv/bin/engine}"
CONFIG="${CONFIG:-/etc/sales-engine/backup.yaml}"

"$ENGINE" backup create --config "$CONFIG"
"$ENGINE" backup verify --latest --config "$CONFIG"
"$ENGINE" backup prune --config "$CONFIG"
