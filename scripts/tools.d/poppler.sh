# Poppler's command-line tools (pdftoppm rasterises scanned PDF pages for OCR; pdftotext is the
# reference the extraction benchmark compares against), from Debian's packages. Needs root (or
# passwordless sudo) the first time.
POPPLER_PACKAGES="poppler-utils"

aimesh_install_poppler() {
  if command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null; then
    return 0
  fi
  # shellcheck disable=SC2086
  aimesh_apt_install $POPPLER_PACKAGES
}
