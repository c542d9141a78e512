# Tesseract (OCR engine) with its English model, from Debian's packages. Needs root (or
# passwordless sudo) the first time.
TESSERACT_PACKAGES="tesseract-ocr tesseract-ocr-eng"

aimesh_install_tesseract() {
  if command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -x eng >/dev/null; then
    return 0
  fi
  aimesh_tools_log "installing $TESSERACT_PACKAGES"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $TESSERACT_PACKAGES >/dev/null
}
