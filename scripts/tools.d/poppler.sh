# Poppler's command-line tools (pdftoppm rasterises scanned PDF pages for OCR; pdftotext is the
# reference the extraction benchmark compares against), from Debian's packages. Needs root (or
# passwordless sudo) the first time.
POPPLER_PACKAGES="poppler-utils"

aimesh_install_poppler() {
  if command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null; then
    return 0
  fi
  aimesh_tools_log "installing $POPPLER_PACKAGES"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $POPPLER_PACKAGES >/dev/null
}
