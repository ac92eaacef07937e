#!/usr/bin/env bash
# The example server driven by curl: discovery, registration, consent pages,
# MCP tools, restart persistence — on the embedded store and on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in jq curl openssl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq curl openssl >/dev/null; break; }
done
trap 'bash scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT
bash scripts/smoke-axum.sh
SMOKE_DATABASE_URL=$(bash scripts/pg.sh start) bash scripts/smoke-axum.sh
