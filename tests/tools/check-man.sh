#!/bin/sh
# Checks the man pages in docs/man and that the docs keep up with the code.
#
#   tests/tools/check-man.sh          (from anywhere; exit 0 only when clean)
#
# 1. Rendering: every page renders with `man --warnings -l` (Debian man-db
#    and groff) to a non-empty text with nothing on stderr, passes
#    `groff -man -ww -z` silently, has a NAME line lexgrog(1) can read (what
#    mandb/whatis index), and is plain ASCII (use groff escapes).
# 2. Cross-checks against the sources, so the docs cannot silently fall
#    behind:
#    - every setting of server/config.c's table (`statesrvd --settings`) is
#      an entry of statesrvd.conf(5) (`.BI "key = "...`) and a `### \`key\``
#      heading of docs/configuration.md, every setting documented there is
#      in the table, and the default and range in configuration.md's summary
#      table are the code's
#      conf/statesrvd.conf names every setting, and each line it sets holds
#      the code's default;
#    - every long option of statesrvd (server/main.c) is in statesrvd(8);
#    - every environment variable the server or statectl reads is in their
#      page;
#    - every statectl command and option (client/statectl.c) is in
#      statectl(1);
#    - every function in client/statesrv.h is in libstatesrv(3)'s synopsis,
#      and its EXAMPLES program compiles against the header.
# Names extracted below are single words; backquotes in sed patterns are literal.
# shellcheck disable=SC2013,SC2016
set -u
export LC_ALL=C # sort and comm must agree on the order

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
MAN_DIR=docs/man
CONF_MAN=$MAN_DIR/statesrvd.conf.5
CONF_MD=docs/configuration.md
SRV_MAN=$MAN_DIR/statesrvd.8
CTL_MAN=$MAN_DIR/statectl.1
LIB_MAN=$MAN_DIR/libstatesrv.3

failures=0
fail() {
    echo "check-man: FAIL: $*" >&2
    failures=$((failures + 1))
}

for tool in man groff lexgrog; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check-man: $tool is missing (Debian: apt-get install man-db groff-base)" >&2
        exit 2
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-man.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT INT TERM

# --- 1. rendering --------------------------------------------------------
# A fixed environment: no user man options, no pager, a UTF-8 locale that
# exists on Debian, and a fixed width.
pages=$(ls "$MAN_DIR"/*.[1-8] 2>/dev/null)
[ -n "$pages" ] || fail "no man pages in $MAN_DIR"
for page in $pages; do
    name=$(basename "$page")
    ok=1
    if LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat MANOPT='' MANROFFOPT='' \
        man --warnings -l "$page" >"$TMP/out" 2>"$TMP/err"; then
        :
    else
        fail "$name: man exited with status $?"
        ok=0
    fi
    if [ -s "$TMP/err" ]; then
        fail "$name: man --warnings printed on stderr:"
        sed 's/^/    /' "$TMP/err" >&2
        ok=0
    fi
    # Without its header and footer lines, the page must still say something.
    if ! grep '[[:alnum:]]' "$TMP/out" | sed '1d;$d' | grep -q .; then
        fail "$name: renders empty"
        ok=0
    fi
    if ! groff -man -ww -z "$page" >"$TMP/gout" 2>&1 || [ -s "$TMP/gout" ]; then
        fail "$name: groff -man -ww -z is not silent:"
        sed 's/^/    /' "$TMP/gout" >&2
        ok=0
    fi
    if ! lexgrog "$page" >/dev/null 2>&1; then
        fail "$name: lexgrog cannot parse its NAME section"
        ok=0
    fi
    if LC_ALL=C grep -n '[^ -~	]' "$page" >"$TMP/nonascii"; then
        fail "$name: non-ASCII characters (use groff escapes such as \\(em):"
        sed 's/^/    /' "$TMP/nonascii" >&2
        ok=0
    fi
    [ $ok = 1 ] && echo "check-man: $name renders cleanly ($(wc -l <"$TMP/out") lines)"
done

# --- 2. cross-checks -------------------------------------------------------
# Settings: the table in server/config.c is the truth, as `statesrvd
# --settings` prints it (name, default, range, what it does).
STATESRVD_BIN=${STATESRVD:-${SV_BUILD:-build}/statesrvd}
[ -x "$STATESRVD_BIN" ] || fail "no $STATESRVD_BIN to ask for its settings (run make first)"
"$STATESRVD_BIN" --settings >"$TMP/settings" 2>/dev/null ||
    fail "$STATESRVD_BIN --settings failed"
cut -f1 "$TMP/settings" | sort -u >"$TMP/code-settings"
[ -s "$TMP/code-settings" ] || fail "statesrvd --settings listed no settings"
sed -n 's/^\.B[IR]\{0,1\} "\([a-z_0-9]*\) = .*/\1/p' "$CONF_MAN" | sort -u >"$TMP/man-settings"
sed -n 's/^### `\([a-z_0-9]*\)`$/\1/p' "$CONF_MD" | sort -u >"$TMP/md-settings"
for k in $(comm -23 "$TMP/code-settings" "$TMP/man-settings"); do
    fail "setting '$k' is in server/config.c's table but missing from $CONF_MAN"
done
for k in $(comm -23 "$TMP/code-settings" "$TMP/md-settings"); do
    fail "setting '$k' is in server/config.c's table but has no '### \`$k\`' in $CONF_MD"
done
for k in $(comm -13 "$TMP/code-settings" "$TMP/man-settings"); do
    fail "setting '$k' is documented in $CONF_MAN but not in server/config.c's table"
done
for k in $(comm -13 "$TMP/code-settings" "$TMP/md-settings"); do
    fail "setting '$k' is documented in $CONF_MD but not in server/config.c's table"
done
# The sample config lists every setting (`name = value`, or `# name = value`
# for one left unset on purpose), each active line with the code's default.
SAMPLE_CONF=conf/statesrvd.conf
sed -n 's/^#\{0,1\} *\([a-z_0-9]*\) =.*/\1/p' "$SAMPLE_CONF" | sort -u >"$TMP/conf-settings"
for k in $(comm -23 "$TMP/code-settings" "$TMP/conf-settings"); do
    fail "setting '$k' is in server/config.c's table but missing from $SAMPLE_CONF"
done
for k in $(comm -13 "$TMP/code-settings" "$TMP/conf-settings"); do
    fail "setting '$k' is in $SAMPLE_CONF but not in server/config.c's table"
done
grep '^[a-z_0-9]* =' "$SAMPLE_CONF" >"$TMP/conf-active"
while IFS= read -r line; do
    k=${line%% =*}
    v=$(printf '%s\n' "$line" | sed 's/^[^=]*= *//; s/ *;.*$//; s/ *$//')
    d=$(awk -F'\t' -v k="$k" '$1 == k { print $2 }' "$TMP/settings")
    [ "$v" = "$d" ] || fail "$SAMPLE_CONF sets $k = '$v'; the default is '$d'"
done <"$TMP/conf-active"
echo "check-man: $(wc -l <"$TMP/conf-settings") settings in $SAMPLE_CONF"
# The summary table of docs/configuration.md gives each default and range:
# the first `quoted` word of the default cell (or "empty"), and the range up
# to its first space or comma where the code has one (a..b).
while IFS= read -r line; do
    name=$(printf '%s\n' "$line" | cut -f1)
    def=$(printf '%s\n' "$line" | cut -f2)
    range=$(printf '%s\n' "$line" | cut -f3)
    row=$(grep -F "| [\`$name\`](#$name) |" "$CONF_MD" | head -1)
    [ -n "$row" ] || { fail "setting '$name' has no row in the table of $CONF_MD"; continue; }
    mdef=$(printf '%s\n' "$row" | awk -F'|' '{print $3}')
    case "$mdef" in
    *empty*) mdef="" ;;
    *) mdef=$(printf '%s\n' "$mdef" | sed -n 's/^[^`]*`\([^`]*\)`.*/\1/p') ;;
    esac
    [ "$mdef" = "$def" ] || fail "setting '$name': default '$def' in the code, '$mdef' in $CONF_MD"
    case "$range" in
    *..*)
        mrange=$(printf '%s\n' "$row" | awk -F'|' '{print $4}' | sed 's/^ *//; s/[ ,].*//')
        [ "$mrange" = "$range" ] || fail "setting '$name': range $range in the code, '$mrange' in $CONF_MD"
        ;;
    esac
done <"$TMP/settings"
echo "check-man: $(wc -l <"$TMP/code-settings") settings in server/config.c's table," \
    "$(wc -l <"$TMP/man-settings") in $CONF_MAN, $(wc -l <"$TMP/md-settings") in $CONF_MD"

# In man sources a '-' is written '\-'; compare with that form.
man_escape() {
    printf '%s' "$1" | sed 's/-/\\-/g'
}

# statesrvd's long options.
n=0
for opt in $(sed -n 's/^ *{"\([a-z-]*\)", *\(required\|no\|optional\)_argument.*/\1/p' server/main.c); do
    n=$((n + 1))
    grep -qF -- "$(man_escape "--$opt")" "$SRV_MAN" ||
        fail "statesrvd option --$opt (server/main.c) is missing from $SRV_MAN"
done
[ $n -gt 0 ] || fail "found no long options in server/main.c"
echo "check-man: $n statesrvd options checked against $SRV_MAN"

# Environment variables.
for v in $(cat server/*.c common/*.c 2>/dev/null | grep -o 'getenv("[A-Z_0-9]*")' |
    sed 's/.*"\(.*\)".*/\1/' | sort -u); do
    grep -qF "$v" "$SRV_MAN" || fail "the server reads \$$v, which $SRV_MAN does not mention"
done
for v in $(grep -o 'getenv("[A-Z_0-9]*")' client/statectl.c client/statesrv.c |
    sed 's/.*"\(.*\)".*/\1/' | sort -u); do
    grep -qF "$v" "$CTL_MAN" || fail "statectl reads \$$v, which $CTL_MAN does not mention"
done

# statectl: commands ({"name", cmd_... or {"group", NULL, ...) and options.
n=0
for cmd in $(sed -n 's/^ *{"\([a-z][a-z ]*\)", \(cmd_[a-z_]*\|NULL\),.*/\1/p' client/statectl.c |
    tr ' ' '+'); do
    n=$((n + 1))
    cmd=$(printf '%s' "$cmd" | tr '+' ' ')
    grep -Eq "^\.SS \"?$cmd( |\"|\$)" "$CTL_MAN" ||
        fail "statectl command '$cmd' (client/statectl.c) has no .SS section in $CTL_MAN"
done
[ $n -gt 0 ] || fail "found no commands in client/statectl.c"
echo "check-man: $n statectl commands checked against $CTL_MAN"
for opt in $(grep -o '"-[-a-z]*"' client/statectl.c | tr -d '"' | sort -u); do
    case $opt in -|--) continue ;; esac
    grep -qF -- "$(man_escape "$opt")" "$CTL_MAN" ||
        fail "statectl option $opt (client/statectl.c) is missing from $CTL_MAN"
done

# libstatesrv: every public function in the synopsis.
n=0
for fn in $(sed -n 's/.*STATESRV_API.*[ *]\(statesrv_[a-z0-9_]*\)(.*/\1/p' client/statesrv.h | sort -u); do
    n=$((n + 1))
    grep -q "^\.B.* \"*[a-z_ ]*\**$fn(" "$LIB_MAN" ||
        fail "$fn (client/statesrv.h) is missing from the SYNOPSIS of $LIB_MAN"
done
[ $n -gt 0 ] || fail "found no STATESRV_API functions in client/statesrv.h"
echo "check-man: $n libstatesrv functions checked against $LIB_MAN"

# libstatesrv(3)'s example compiles against the header.
sed -n '/^\.\\" example-begin/,/^\.\\" example-end/p' "$LIB_MAN" |
    sed -e '/^\.\\"/d' -e '/^\.EX$/d' -e '/^\.EE$/d' \
        -e 's/\\e/\\/g' -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\(dq/"/g' >"$TMP/example.c"
CC=${CC:-cc}
if ! grep -q 'main(' "$TMP/example.c"; then
    fail "$LIB_MAN: no example between the example-begin/example-end markers"
elif command -v "$CC" >/dev/null 2>&1; then
    if ! "$CC" -std=c11 -Wall -Wextra -Werror -fsyntax-only -Iclient "$TMP/example.c" \
        2>"$TMP/ccerr"; then
        fail "$LIB_MAN: the EXAMPLES program does not compile:"
        sed 's/^/    /' "$TMP/ccerr" >&2
    else
        echo "check-man: libstatesrv(3) example compiles"
    fi
else
    echo "check-man: $CC not found; libstatesrv(3) example not compiled"
fi

if [ $failures -gt 0 ]; then
    echo "check-man: $failures problem(s)" >&2
    exit 1
fi
echo "check-man: all clean"
exit 0
