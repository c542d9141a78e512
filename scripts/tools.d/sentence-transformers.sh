# sentence-transformers on PyTorch (CPU use; the PyPI wheel of torch brings its CUDA
# libraries too, several GB), the peer of the embeddings benchmark, from PyPI.
SENTENCE_TRANSFORMERS_VERSION=6.2.0
TORCH_VERSION=2.15.0
TRANSFORMERS_VERSION=5.24.0

aimesh_install_sentence_transformers() {
  local venv="$AIMESH_TOOLS/sentence-transformers-$SENTENCE_TRANSFORMERS_VERSION"
  if ! "$venv/bin/python" -c "import torch, sentence_transformers" 2>/dev/null; then
    aimesh_tools_log "installing sentence-transformers $SENTENCE_TRANSFORMERS_VERSION with torch $TORCH_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet \
      "torch==$TORCH_VERSION" "transformers==$TRANSFORMERS_VERSION" \
      "sentence-transformers==$SENTENCE_TRANSFORMERS_VERSION" || return 1
  fi
  export SENTENCE_TRANSFORMERS_PYTHON="$venv/bin/python"
}
