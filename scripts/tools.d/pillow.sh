# Pillow, the peer of the thumbnail benchmark, from PyPI (its wheels bundle libjpeg-turbo,
# libwebp and zlib).
PILLOW_VERSION=13.0.0

aimesh_install_pillow() {
  local venv="$AIMESH_TOOLS/pillow-$PILLOW_VERSION"
  if ! "$venv/bin/python" -c "import PIL" 2>/dev/null; then
    aimesh_tools_log "installing Pillow $PILLOW_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "pillow==$PILLOW_VERSION" || return 1
  fi
  export PILLOW_PYTHON="$venv/bin/python"
}
