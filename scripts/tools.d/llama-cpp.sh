# llama-cpp-python (the GGUF chat peer of the chat benchmark), from PyPI. It has no CPU wheel:
# pip builds llama.cpp from source with the machine's C/C++ compiler, for the host CPU
# (several minutes). CMake and Ninja come from PyPI when the machine has none.
LLAMA_CPP_PYTHON_VERSION=0.3.16
LLAMA_CPP_CMAKE_VERSION=4.1.0
LLAMA_CPP_NINJA_VERSION=1.13.0

aimesh_install_llama_cpp() {
  local venv="$AIMESH_TOOLS/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
  if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
    aimesh_tools_log "installing llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (builds llama.cpp: several minutes)"
    python3 -m venv "$venv" &&
      "$venv/bin/pip" install --quiet "cmake==$LLAMA_CPP_CMAKE_VERSION" "ninja==$LLAMA_CPP_NINJA_VERSION" &&
      PATH="$venv/bin:$PATH" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
        "$venv/bin/pip" install --quiet "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}
