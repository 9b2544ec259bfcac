#!/bin/sh
# Checks `make install` and `make uninstall` end to end (run by `make test-install`).
#
#   tests/tools/check-install.sh     (from anywhere, after `make`; exit 0 only when clean)
#
# 1. DESTDIR install with the default PREFIX (/usr/local, so SYSCONFDIR /etc)
#    into a temp dir: every file, mode and symlink; the soname of the
#    installed library (readelf -d); statesrv.pc; the unit's ExecStart.
# 2. A program written here, outside the tree, is built against the install
#    with `cc app.c $(pkg-config --cflags --libs statesrv)` (PKG_CONFIG_PATH
#    and PKG_CONFIG_SYSROOT_DIR on the staged .pc), and statically against
#    libstatesrv.a with `pkg-config --static`; both run against the installed
#    statesrvd on a Unix socket in the temp dir, and do put/get/add.
# 3. `man` finds the installed pages (man -M ... -w) and renders them (man -l).
# 4. A changed config survives a reinstall and the uninstall (said on stdout);
#    after `make uninstall` nothing but that config and empty dirs remain.
# 5. PREFIX install into a temp dir (no DESTDIR): the .pc's own paths build
#    the program, the unit's paths follow PREFIX, and uninstall leaves only
#    empty dirs.
# Environment (set by the Makefile): SV_BUILD (build dir, default build),
# SV_SANITIZE (SANITIZE of the build), SV_APP_FLAGS (flags the sanitized
# library needs in the program's link too). MAKE: make by default.
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=${SV_BUILD:-build}
MAKE=${MAKE:-make}
CC=${CC:-cc}
VERSION=$(sed -n 's/^LIB_VERSION := //p' Makefile)
SOVERSION=$(sed -n 's/^LIB_SOVERSION := //p' Makefile)
if [ -z "$VERSION" ] || [ -z "$SOVERSION" ]; then
    echo "check-install: no LIB_VERSION or LIB_SOVERSION in Makefile" >&2
    exit 2
fi
for tool in pkg-config readelf man "$CC"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check-install: $tool is missing" >&2
        exit 2
    fi
done
[ -x "$BUILD/statesrvd" ] || { echo "check-install: run make first ($BUILD/statesrvd missing)" >&2; exit 2; }

failures=0
fail() {
    echo "check-install: FAIL: $*" >&2
    failures=$((failures + 1))
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-install.XXXXXX") || exit 2
# man-db reads pages as the unprivileged man user when run as root.
chmod 0755 "$TMP"
SRV_PID=
cleanup() {
    if [ -n "$SRV_PID" ]; then
        kill -KILL "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The inner make sees only what we pass: no jobserver or variables of the
# make that runs this script.
run_make() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "$MAKE" --no-print-directory -s -C "$ROOT" \
        BUILD="$BUILD" SANITIZE="${SV_SANITIZE:-}" LDCONFIG=true "$@"
}

# expect_file PATH MODE: a regular file with that mode.
expect_file() {
    if [ -f "$1" ] && [ ! -L "$1" ]; then
        mode=$(stat -c %a "$1")
        [ "$mode" = "$2" ] || fail "$1: mode $mode, expected $2"
    else
        fail "$1: not installed (or not a regular file)"
    fi
}
# expect_link PATH TARGET
expect_link() {
    if [ -L "$1" ]; then
        t=$(readlink "$1")
        [ "$t" = "$2" ] || fail "$1 -> $t, expected -> $2"
    else
        fail "$1: not a symlink"
    fi
}

# check_tree R PREFIX SYSCONFDIR: everything install puts under R (DESTDIR).
check_tree() {
    r=$1 p=$2 etc=$3
    expect_file "$r$p/sbin/statesrvd" 755
    expect_file "$r$p/bin/statectl" 755
    expect_file "$r$p/bin/statesrv-bench" 755
    expect_file "$r$p/lib/libstatesrv.so.$VERSION" 644
    expect_link "$r$p/lib/libstatesrv.so.$SOVERSION" "libstatesrv.so.$VERSION"
    expect_link "$r$p/lib/libstatesrv.so" "libstatesrv.so.$SOVERSION"
    expect_file "$r$p/lib/libstatesrv.a" 644
    expect_file "$r$p/include/statesrv.h" 644
    expect_file "$r$p/lib/pkgconfig/statesrv.pc" 644
    for page in docs/man/*.[1-8]; do
        n=${page##*/}
        expect_file "$r$p/share/man/man${n##*.}/$n" 644
    done
    for doc in docs/*.md; do
        expect_file "$r$p/share/doc/statesrvd/${doc##*/}" 644
    done
    expect_file "$r$p/share/doc/statesrvd/examples/statesrvd.conf" 644
    expect_file "$r$p/share/bash-completion/completions/statectl" 644
    expect_file "$r$etc/statesrvd/statesrvd.conf" 644
    unit="$r$p/lib/systemd/system/statesrvd@.service"
    expect_file "$unit" 644

    cmp -s "$BUILD/statesrvd" "$r$p/sbin/statesrvd" || fail "installed statesrvd differs from $BUILD/statesrvd"
    cmp -s client/statesrv.h "$r$p/include/statesrv.h" || fail "installed statesrv.h differs"
    cmp -s conf/statesrvd.conf "$r$etc/statesrvd/statesrvd.conf" || fail "installed config differs from the sample"
    soname=$(readelf -d "$r$p/lib/libstatesrv.so.$VERSION" 2>/dev/null |
        sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = "libstatesrv.so.$SOVERSION" ] || fail "installed library's soname is '$soname'"
    "$r$p/sbin/statesrvd" --version 2>&1 | grep -q "^statesrvd $VERSION" ||
        fail "installed statesrvd --version does not say $VERSION"
    "$r$p/bin/statectl" --version >/dev/null 2>&1 || fail "installed statectl --version fails"

    # The unit runs the installed daemon with the installed config.
    grep -q "^ExecStart=$p/sbin/statesrvd --config $etc/statesrvd/statesrvd.conf " "$unit" ||
        fail "unit's ExecStart is not $p/sbin/statesrvd --config $etc/statesrvd/statesrvd.conf: $(grep ExecStart= "$unit")"
    grep -q "^Documentation=file://$p/share/doc/statesrvd/operations.md" "$unit" ||
        fail "unit's Documentation= does not name the installed operations.md"
}

# A program that knows nothing of the source tree.
cat >"$TMP/app.c" <<'EOF'
#include <statesrv.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    statesrv *c;
    char err[256];
    const char *want = argc > 2 ? argv[2] : "value";
    statesrv_key k = {.state = "install_check", .key = "k1", .key_len = 2};
    statesrv_value v;
    int64_t n = 0;
    int rc = statesrv_connect2(argv[1], NULL, &c, err, sizeof err);
    if (rc != STATESRV_OK) {
        fprintf(stderr, "app: connect %s: %s: %s\n", argv[1], statesrv_strerror(rc), err);
        return 1;
    }
    rc = statesrv_put(c, &k, want, strlen(want));
    if (rc == STATESRV_OK)
        rc = statesrv_get(c, &k, &v);
    if (rc != STATESRV_OK) {
        fprintf(stderr, "app: %s: %s\n", statesrv_strerror(rc), statesrv_errmsg(c));
        statesrv_close(c);
        return 1;
    }
    if (v.len != strlen(want) || memcmp(v.data, want, v.len) != 0) {
        fprintf(stderr, "app: get returned %zu bytes, not '%s'\n", v.len, want);
        statesrv_value_free(&v);
        statesrv_close(c);
        return 1;
    }
    statesrv_value_free(&v);
    k.key = "count";
    k.key_len = 5;
    rc = statesrv_add(c, &k, 1, &n);
    statesrv_close(c);
    if (rc != STATESRV_OK)
        return 1;
    printf("%s %lld\n", want, (long long)n);
    return 0;
}
EOF

# build_and_run NAME PKG_CONFIG_ENV...: builds app dynamically and
# statically with pkg-config under that environment and runs both; LIBDIR
# (global) is where the installed shared library is.
build_and_run() {
    name=$1
    shift
    cflags=$(env "$@" pkg-config --cflags statesrv) || { fail "$name: pkg-config --cflags statesrv"; return; }
    libs=$(env "$@" pkg-config --libs statesrv) || { fail "$name: pkg-config --libs statesrv"; return; }
    slibs=$(env "$@" pkg-config --static --libs statesrv) || { fail "$name: pkg-config --static --libs"; return; }
    case "$slibs" in *-lprotobuf-c*) ;; *) fail "$name: pkg-config --static --libs lacks -lprotobuf-c: $slibs" ;; esac
    # shellcheck disable=SC2086 # word splitting of the pkg-config output is intended
    if ! (cd "$TMP" && $CC -std=c11 -Wall -Werror ${SV_APP_FLAGS:-} -o "app-$name" app.c $cflags $libs) \
        >"$TMP/cc.log" 2>&1; then
        head -n 20 "$TMP/cc.log" >&2
        fail "$name: cc app.c \$(pkg-config --cflags --libs statesrv) failed"
        return
    fi
    readelf -d "$TMP/app-$name" | grep -q "NEEDED.*\[libstatesrv.so.$SOVERSION\]" ||
        fail "$name: app does not need libstatesrv.so.$SOVERSION"
    loaded=$(LD_LIBRARY_PATH=$LIBDIR LD_TRACE_LOADED_OBJECTS=1 "$TMP/app-$name" | sed -n 's/.*libstatesrv.so.[0-9]* => \([^ ]*\).*/\1/p')
    [ "$loaded" = "$LIBDIR/libstatesrv.so.$SOVERSION" ] || fail "$name: app loads libstatesrv from '$loaded'"
    out=$(LD_LIBRARY_PATH=$LIBDIR "$TMP/app-$name" "unix:$SOCK" "$name-dynamic") ||
        fail "$name: the dynamically linked app failed: $out"
    case "$out" in "$name-dynamic "[0-9]*) ;; *) fail "$name: dynamic app printed '$out'" ;; esac

    # Static libstatesrv (-l:libstatesrv.a), and what --static adds for it.
    slibs=$(printf '%s\n' "$slibs" | sed 's/-lstatesrv\b/-l:libstatesrv.a/')
    # shellcheck disable=SC2086
    if ! (cd "$TMP" && $CC -std=c11 -Wall -Werror ${SV_APP_FLAGS:-} -o "app-$name-static" app.c $cflags $slibs) \
        >"$TMP/cc.log" 2>&1; then
        head -n 20 "$TMP/cc.log" >&2
        fail "$name: static link with pkg-config --static --libs failed"
        return
    fi
    if readelf -d "$TMP/app-$name-static" | grep -q 'NEEDED.*libstatesrv'; then
        fail "$name: the static app still needs libstatesrv.so"
    fi
    out=$("$TMP/app-$name-static" "unix:$SOCK" "$name-static") || fail "$name: the static app failed: $out"
    case "$out" in "$name-static "[0-9]*) ;; *) fail "$name: static app printed '$out'" ;; esac
}

# leftovers DIR: files and symlinks left under DIR.
leftovers() {
    (cd "$1" && find . \( -type f -o -type l \) -print | sort)
}

# --- 1. DESTDIR install ---------------------------------------------------
DEST=$TMP/root
P=/usr/local
run_make install DESTDIR="$DEST" >"$TMP/install.out" 2>&1 || { cat "$TMP/install.out" >&2; fail "make install DESTDIR=$DEST"; }
check_tree "$DEST" "$P" /etc

# --- 2. programs outside the tree, against the installed server ------------
SOCK=$TMP/s.sock
mkdir -p "$TMP/data" "$TMP/ckpt"
printf 'map_size = 4M\nmap_size_max = 16M\nlog_level = warn\n' >"$TMP/srv.conf"
"$DEST$P/sbin/statesrvd" --config "$TMP/srv.conf" --listen "" --unix "$SOCK" \
    --data-dir "$TMP/data" --checkpoint-dir "$TMP/ckpt" >"$TMP/srv.log" 2>&1 &
SRV_PID=$!
up=0
i=0
while [ $i -lt 100 ]; do
    if "$DEST$P/bin/statectl" -a "unix:$SOCK" --timeout 1000 ping >/dev/null 2>&1; then
        up=1
        break
    fi
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
done
if [ $up = 1 ]; then
    LIBDIR=$DEST$P/lib
    build_and_run destdir PKG_CONFIG_PATH="$DEST$P/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEST"
    got=$("$DEST$P/bin/statectl" -a "unix:$SOCK" get install_check k1 2>&1)
    [ "$got" = "destdir-static" ] || fail "statectl get after the apps: '$got'"
else
    fail "installed statesrvd did not answer on $SOCK: $(cat "$TMP/srv.log")"
fi

# --- 2b. bash completion: commands and a command's options from statectl ----
if command -v bash >/dev/null; then
    comp=$(bash -c 'source "$1"; COMP_WORDS=("$2" chec); COMP_CWORD=1; _statectl
        echo "${COMPREPLY[*]}"; COMP_WORDS=("$2" snapshot --f); COMP_CWORD=2; _statectl
        echo "${COMPREPLY[*]}"' _ "$DEST$P/share/bash-completion/completions/statectl" \
        "$DEST$P/bin/statectl" 2>&1)
    [ "$comp" = "checkpoint checkpoints
--full" ] || fail "bash completion: '$comp'"
fi

# --- 3. man pages ---------------------------------------------------------
for page in docs/man/*.[1-8]; do
    n=${page##*/}
    sec=${n##*.}
    found=$(MANPATH="" man -M "$DEST$P/share/man" -w "$sec" "${n%.*}" 2>&1)
    [ "$found" = "$DEST$P/share/man/man$sec/$n" ] || fail "man -w $sec ${n%.*}: '$found'"
    MANWIDTH=80 MAN_KEEP_FORMATTING="" man -l "$found" >"$TMP/man.txt" 2>"$TMP/man.err" </dev/null ||
        fail "man -l $found failed: $(cat "$TMP/man.err")"
    grep -q '^NAME' "$TMP/man.txt" || fail "man -l $found: no NAME section rendered"
done

# --- 4. a changed config is kept; uninstall removes the rest ---------------
echo "log_level = debug" >>"$DEST/etc/statesrvd/statesrvd.conf"
cp "$DEST/etc/statesrvd/statesrvd.conf" "$TMP/conf.changed"
run_make install DESTDIR="$DEST" >"$TMP/install.out" 2>&1 || fail "make install DESTDIR=$DEST (again)"
grep -q "kept $DEST/etc/statesrvd/statesrvd.conf" "$TMP/install.out" || fail "reinstall did not say it kept the config"
cmp -s "$TMP/conf.changed" "$DEST/etc/statesrvd/statesrvd.conf" || fail "reinstall overwrote a changed config"
run_make uninstall DESTDIR="$DEST" >"$TMP/uninstall.out" 2>&1 || fail "make uninstall DESTDIR=$DEST"
grep -q "kept $DEST/etc/statesrvd/statesrvd.conf" "$TMP/uninstall.out" || fail "uninstall did not say it kept the config"
left=$(leftovers "$DEST")
[ "$left" = "./etc/statesrvd/statesrvd.conf" ] || fail "after uninstall DESTDIR=$DEST, left: $(echo "$left" | tr '\n' ' ')"
[ -d "$DEST$P/share/doc/statesrvd" ] && fail "uninstall left $P/share/doc/statesrvd"

# --- 5. PREFIX install (no DESTDIR) ----------------------------------------
P2=$TMP/prefix
run_make install PREFIX="$P2" >"$TMP/install.out" 2>&1 || { cat "$TMP/install.out" >&2; fail "make install PREFIX=$P2"; }
check_tree "" "$P2" "$P2/etc"
libdir=$(PKG_CONFIG_PATH="$P2/lib/pkgconfig" pkg-config --variable=libdir statesrv)
[ "$libdir" = "$P2/lib" ] || fail "statesrv.pc libdir is '$libdir', expected $P2/lib"
if [ $up = 1 ]; then
    LIBDIR=$P2/lib
    build_and_run prefix PKG_CONFIG_PATH="$P2/lib/pkgconfig"
fi
# The installed unit, paths and all (ExecStart must exist), as an instance.
if command -v systemd-analyze >/dev/null 2>&1; then
    cp "$P2/lib/systemd/system/statesrvd@.service" "$TMP/statesrvd@check.service"
    systemd-analyze verify "$TMP/statesrvd@check.service" >"$TMP/verify.out" 2>&1 ||
        fail "systemd-analyze verify of the installed unit: $(cat "$TMP/verify.out")"
else
    echo "check-install: systemd-analyze missing, installed unit not verified"
fi
run_make uninstall PREFIX="$P2" >"$TMP/uninstall.out" 2>&1 || fail "make uninstall PREFIX=$P2"
left=$(leftovers "$P2")
[ -z "$left" ] || fail "after uninstall PREFIX=$P2, left: $(echo "$left" | tr '\n' ' ')"
[ -d "$P2/etc/statesrvd" ] && fail "uninstall left $P2/etc/statesrvd"

# --- the server -------------------------------------------------------------
if [ -n "$SRV_PID" ]; then
    kill -TERM "$SRV_PID" 2>/dev/null
    i=0
    while kill -0 "$SRV_PID" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        fail "statesrvd did not stop within 5 s of SIGTERM"
    else
        wait "$SRV_PID"
        st=$?
        [ $st = 0 ] || fail "statesrvd exited with $st after SIGTERM: $(cat "$TMP/srv.log")"
        SRV_PID=
    fi
fi

if [ $failures -ne 0 ]; then
    echo "check-install: $failures failure(s)" >&2
    exit 1
fi
echo "check-install: ok (DESTDIR and PREFIX installs, pkg-config shared and static builds, man, uninstall)"
