# buf (protobuf lint, format, breaking checks, code generation), from npm.
BUF_VERSION=1.75.0

aimesh_install_buf() {
  local dir="$AIMESH_TOOLS/buf-$BUF_VERSION"
  if [ ! -x "$dir/node_modules/.bin/buf" ]; then
    aimesh_tools_log "installing buf $BUF_VERSION"
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund "@bufbuild/buf@$BUF_VERSION" >/dev/null) || return 1
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
}
