#!/usr/bin/env bash
# The C ABI from C: installs the static library with its pkg-config file into a staging prefix,
# compiles examples/c/{generate,chat}.c and capi/tests/layout.c with the system C compiler
# (-Wall -Wextra -Werror), and checks that
#   - the C compiler's struct layouts and codes equal capi/abi/layout-64bit.txt (pinned by tests/abi.rs),
#   - the library exports exactly the functions in capi/abi/symbols.txt (nm),
#   - generate.c prints byte for byte what `ingot generate` prints (greedy, seeded, 2 threads, in a
#     caller arena, from memory), and chat.c what `ingot chat` prints for the same turns,
#   - both run under valgrind --leak-check=full with 0 errors and 0 leaks of any kind.
#
#   capi/scripts/test-c.sh          (from anywhere; installs valgrind and pkg-config with apt if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

M=$(scripts/fetch-model.sh)
cargo build --release --bin ingot
target=${CARGO_TARGET_DIR:-target}
work=$target/c-abi
rm -rf "$work" && mkdir -p "$work"
STATIC_ONLY=1 capi/scripts/install.sh "$work/prefix" >/dev/null
export PKG_CONFIG_PATH=$work/prefix/lib/pkgconfig
flags=$(pkg-config --static --cflags --libs ingot)
for prog in examples/c/generate.c examples/c/chat.c capi/tests/layout.c; do
    # shellcheck disable=SC2086 # word splitting of the pkg-config flags is intended
    cc -std=c11 -O2 -g -Wall -Wextra -Werror "$prog" -o "$work/$(basename "$prog" .c)" $flags
done
ingot=$target/release/ingot

"$work/layout" | diff -u capi/abi/layout-64bit.txt - || { echo "C and Rust layouts differ" >&2; exit 1; }
nm -g --defined-only "$work/prefix/lib/libingot.a" 2>/dev/null | awk '$2 == "T" && $3 ~ /^ingot_/ {print $3}' \
    | sort -u | diff -u capi/abi/symbols.txt - || { echo "exported symbols differ from capi/abi/symbols.txt" >&2; exit 1; }
echo "layout and symbols: ok"

same() { # same NAME FILE1 FILE2
    cmp -s "$2" "$3" || { echo "$1: C and CLI outputs differ" >&2; diff "$2" "$3" >&2 || true; exit 1; }
    echo "$1: identical ($(wc -c <"$2") bytes)"
}
p="The capital of France is"
"$work/generate" -m "$M" -p "$p" -n 48 --temp 0 >"$work/greedy.c.txt"
"$ingot" generate -m "$M" -p "$p" -n 48 --temp 0 2>/dev/null >"$work/greedy.cli.txt"
same "generate greedy" "$work/greedy.c.txt" "$work/greedy.cli.txt"
q="Once upon a time"
"$work/generate" -m "$M" -p "$q" -n 48 --seed 7 --repeat-penalty 1.1 >"$work/seeded.c.txt"
"$ingot" generate -m "$M" -p "$q" -n 48 --seed 7 --repeat-penalty 1.1 2>/dev/null >"$work/seeded.cli.txt"
same "generate seeded" "$work/seeded.c.txt" "$work/seeded.cli.txt"
"$work/generate" -m "$M" -p "$q" -n 48 --seed 7 --repeat-penalty 1.1 --threads 2 --arena >"$work/arena.c.txt"
same "generate in an arena, 2 threads" "$work/arena.c.txt" "$work/seeded.cli.txt"
"$work/generate" -m "$M" -p "$p" -n 48 --temp 0 --from-memory >"$work/memory.c.txt"
same "generate from memory" "$work/memory.c.txt" "$work/greedy.cli.txt"

turns=$'What is the capital of France?\n\nAnd of Italy?\n'
printf '%s' "$turns" | "$work/chat" -m "$M" --temp 0 --ctx 1024 --system "You are terse." >"$work/chat.c.txt"
printf '%s' "$turns" | "$ingot" chat -m "$M" --temp 0 --ctx 1024 --system "You are terse." 2>/dev/null >"$work/chat.cli.txt"
same "chat greedy" "$work/chat.c.txt" "$work/chat.cli.txt"
printf 'Tell me a story.\n' | "$work/chat" -m "$M" --seed 3 --ctx 1024 >"$work/chat2.c.txt"
printf 'Tell me a story.\n' | "$ingot" chat -m "$M" --seed 3 --ctx 1024 2>/dev/null >"$work/chat2.cli.txt"
same "chat seeded" "$work/chat2.c.txt" "$work/chat2.cli.txt"

# Valgrind: short runs (it is ~50x slower), every path: arena + 2 threads, memory image, chat.
# valgrind.supp hides only minijinja's one-time statics; the chat runs check they do not grow.
vg=(valgrind --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all --error-exitcode=1
    --suppressions=capi/scripts/valgrind.supp)
"${vg[@]}" --quiet "$work/generate" -m "$M" -p "$p" -n 4 --temp 0 --arena --threads 2 --ctx 64 >/dev/null
"${vg[@]}" --quiet "$work/generate" -m "$M" -p "$p" -n 2 --from-memory --ctx 64 >/dev/null
printf 'Hi\n' | "${vg[@]}" "$work/chat" -m "$M" --temp 0 --ctx 128 --max-reply 2 2>"$work/vg1.txt" >/dev/null || { cat "$work/vg1.txt" >&2; exit 1; }
printf 'Hi\nBye\nAgain\n' | "${vg[@]}" "$work/chat" -m "$M" --temp 0 --ctx 128 --max-reply 2 2>"$work/vg3.txt" >/dev/null || { cat "$work/vg3.txt" >&2; exit 1; }
s1=$(grep -o 'suppressed: [0-9,]* bytes' "$work/vg1.txt" || true)
s3=$(grep -o 'suppressed: [0-9,]* bytes' "$work/vg3.txt" || true)
[ "$s1" = "$s3" ] || { echo "suppressed bytes grow with chat turns: '$s1' vs '$s3'" >&2; exit 1; }
# Errors are reported, not crashed on, also under valgrind.
if "${vg[@]}" "$work/generate" -m /nonexistent.gguf -p x 2>"$work/err.txt"; then
    echo "a missing model did not fail" >&2; exit 1
fi
grep -q "nonexistent.gguf" "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
echo "valgrind: 0 errors, 0 leaks"
echo "test-c: ok"
