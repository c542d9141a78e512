# The npm dependencies of web/ (grpc-web SDK runtime, protoc-gen-es), installed with `npm ci` from
# web/package-lock.json into a cache directory keyed by the lockfile's hash and linked as
# web/node_modules, so a second run installs nothing. Puts protoc-gen-es on PATH.

aimesh_install_node_web() {
  local web lock hash dir
  web="$(cd "$_aimesh_tools_dir/../../web" && pwd)"
  lock="$web/package-lock.json"
  hash="$(sha256sum "$lock" | cut -c1-16)"
  dir="$AIMESH_CACHE/web/$hash"
  if [ ! -f "$dir/.installed" ]; then
    aimesh_tools_log "installing web/ dependencies ($hash)"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$web/package.json" "$lock" "$dir/" || return 1
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null) || return 1
    touch "$dir/.installed"
  fi
  if [ "$(readlink "$web/node_modules" 2>/dev/null)" != "$dir/node_modules" ]; then
    if [ -e "$web/node_modules" ] && [ ! -L "$web/node_modules" ]; then
      rm -rf "$web/node_modules"
    fi
    ln -sfn "$dir/node_modules" "$web/node_modules"
  fi
  export PATH="$web/node_modules/.bin:$PATH"
}
