# ONNX Runtime, the peer of the background-removal benchmark, from PyPI (with numpy and
# Pillow to read the inputs and masks).
ONNXRUNTIME_VERSION=1.32.0

aimesh_install_onnxruntime() {
  local venv="$AIMESH_TOOLS/onnxruntime-$ONNXRUNTIME_VERSION"
  if ! "$venv/bin/python" -c "import onnxruntime, numpy, PIL" 2>/dev/null; then
    aimesh_tools_log "installing ONNX Runtime $ONNXRUNTIME_VERSION"
    python3 -m venv "$venv" &&
      "$venv/bin/pip" install --quiet "onnxruntime==$ONNXRUNTIME_VERSION" "numpy==2.4.6" \
        "pillow==13.0.0" || return 1
  fi
  export ONNXRUNTIME_PYTHON="$venv/bin/python"
}
