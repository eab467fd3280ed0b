# Sourced by the tests that check understudy's GGUF files against llama.cpp itself (after
# lib.sh): llama_cpp_setup installs the npm package node-llama-cpp (pinned, with its prebuilt
# linux-x64 llama.cpp binaries, and @huggingface/jinja, its renderer of chat templates) once into
# $US_NPM_DIR or else the build folder, under a lock because ctest runs these tests side by side; it sets npm_dir, or
# exits 77 (skip) with the reason where node or npm is missing or older than Node.js 20, the
# machine is not linux x64, or the packages cannot be installed (offline).
NLC_VERSION=3.22.1   # node-llama-cpp and its prebuilt @node-llama-cpp/linux-x64 (llama.cpp inside)
JINJA_VERSION=0.5.11 # @huggingface/jinja, node-llama-cpp's own Jinja renderer

llama_cpp_setup() {
  command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "SKIP: node and npm are needed for the llama.cpp test"; exit 77; }
  node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    { echo "SKIP: node-llama-cpp $NLC_VERSION needs Node.js 20 or newer (found $(node --version))"; exit 77; }
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] ||
    { echo "SKIP: node-llama-cpp's prebuilt binaries used here are for linux x64"; exit 77; }
  # US_NPM_DIR (scripts/test.sh sets it): one install shared by the normal and sanitizer passes
  npm_dir=${US_NPM_DIR:-${US_BINARY_DIR:?}}/npm-node-llama-cpp-$NLC_VERSION
  mkdir -p "$npm_dir"
  local lock=: unlock=:
  command -v flock >/dev/null && { exec 9>"$npm_dir.lock"; lock="flock 9"; unlock="flock -u 9"; }
  $lock
  if [ ! -f "$npm_dir/node_modules/@node-llama-cpp/linux-x64/package.json" ] ||
     [ ! -f "$npm_dir/node_modules/@huggingface/jinja/package.json" ]; then
    # --ignore-scripts: no postinstall (it could download or build llama.cpp); --omit=optional:
    # only the CPU binary asked for by name, not every platform's (700 MB). All three packages in
    # one install: a later `npm install --no-save` of fewer would remove the others.
    (cd "$npm_dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true timeout 600 npm install --no-save \
      --no-audit --no-fund --loglevel=error --ignore-scripts --omit=optional \
      "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" \
      "@huggingface/jinja@$JINJA_VERSION") >"$WORK/npm.log" 2>&1 || {
      $unlock
      tail -n 5 "$WORK/npm.log"
      echo "SKIP: npm install node-llama-cpp@$NLC_VERSION failed (offline?)"
      exit 77
    }
  fi
  $unlock
}
