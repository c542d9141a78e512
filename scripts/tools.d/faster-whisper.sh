# faster-whisper (Whisper on CTranslate2; the speech-to-text peer of the transcribe
# benchmark), from PyPI.
FASTER_WHISPER_VERSION=1.2.1

aimesh_install_faster_whisper() {
  local venv="$AIMESH_TOOLS/faster-whisper-$FASTER_WHISPER_VERSION"
  if ! "$venv/bin/python" -c "import faster_whisper" 2>/dev/null; then
    aimesh_tools_log "installing faster-whisper $FASTER_WHISPER_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "faster-whisper==$FASTER_WHISPER_VERSION" || return 1
  fi
  export PATH="$venv/bin:$PATH"
  export FASTER_WHISPER_PYTHON="$venv/bin/python"
}
