#!/usr/bin/env bash
# Installs the external tools aimesh's scripts use into a cache outside the repository,
# idempotently and at pinned versions, and puts them on PATH. Source it:
#   . scripts/tools.sh buf grpcurl
# Each tool is a file scripts/tools.d/<tool>.sh defining `aimesh_install_<tool>`, which installs
# the tool under $AIMESH_TOOLS when missing and prepends its bin directory to PATH.

AIMESH_CACHE="${AIMESH_CACHE:-$HOME/.cache/aimesh}"
AIMESH_TOOLS="$AIMESH_CACHE/tools"
_aimesh_tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tools.d"

aimesh_tools_log() { printf 'tools: %s\n' "$*" >&2; }

# Installs Debian packages (as root, or through sudo otherwise), quietly.
aimesh_apt_install() {
  aimesh_tools_log "installing $*"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

aimesh_tools() {
  mkdir -p "$AIMESH_TOOLS"
  local tool
  for tool in "$@"; do
    if [ ! -f "$_aimesh_tools_dir/$tool.sh" ]; then
      aimesh_tools_log "unknown tool: $tool"
      return 1
    fi
    # shellcheck source=/dev/null
    . "$_aimesh_tools_dir/$tool.sh"
    # One install of a tool at a time: scripts run side by side (the test suite and a second
    # checkout's) would otherwise remove each other's half-made install.
    local lock status=0
    exec {lock}>"$AIMESH_TOOLS/.$tool.lock"
    flock "$lock"
    "aimesh_install_${tool//-/_}" || status=$?
    exec {lock}>&-
    [ "$status" -eq 0 ] || { aimesh_tools_log "failed to install $tool"; return 1; }
  done
}

aimesh_tools "$@"
