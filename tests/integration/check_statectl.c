/* statectl against a real statesrvd: output, --json, --hex, exit codes. */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ts srv;
static char out[1 << 16];

static void setup(void)
{
    ts_start(&srv, NULL);
}

static void teardown(void)
{
    ts_cleanup(&srv);
}

/* Runs `statectl -a ADDR <args>`; stdout lands in out, stderr is discarded
 * unless the args redirect it. Returns the exit status. */
static int ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int ctl(const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s -a %s %s", statectl_path(), srv.tcp_addr, args);
    return run_cmd(cmd, out, sizeof(out));
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(put_get_del_exit_codes)
{
    ck_assert_int_eq(ctl("ping"), 0);
    ck_assert_int_eq(ctl("put users alice 'hello world'"), 0);
    ck_assert_int_eq(ctl("get users alice"), 0);
    ck_assert_str_eq(out, "hello world\n");
    ck_assert_int_eq(ctl("put users alice in-window -n w1"), 0);
    ck_assert_int_eq(ctl("get users alice -n w1"), 0);
    ck_assert_str_eq(out, "in-window\n");
    ck_assert_int_eq(ctl("get users nobody 2>/dev/null"), 1);
    ck_assert_int_eq(ctl("get users nobody 2>&1"), 1);
    ck_assert_ptr_nonnull(strstr(out, "NOT_FOUND"));
    ck_assert_int_eq(ctl("del users alice"), 0);
    ck_assert_int_eq(ctl("del users alice 2>/dev/null"), 1);
    ck_assert_int_eq(ctl("get users alice -n w1"), 0); /* other namespace kept */
    /* Usage errors: 2. Server-side refusals and connection failures: 3. */
    ck_assert_int_eq(ctl("get users 2>/dev/null"), 2);
    ck_assert_int_eq(ctl("frobnicate 2>/dev/null"), 2);
    /* A bad state name or an empty key is the caller's mistake: 2, before
     * anything is sent. The server's own refusals: 3. */
    ck_assert_int_eq(ctl("get 'bad/name' k 2>&1"), 2);
    ck_assert_ptr_nonnull(strstr(out, "not a state name"));
    ck_assert_int_eq(ctl("put users '' v 2>&1"), 2);
    ck_assert_ptr_nonnull(strstr(out, "key must not be empty"));
    ck_assert_int_eq(ctl("put users k v --key-group 4096 2>&1"), 3);
    ck_assert_ptr_nonnull(strstr(out, "INVALID_ARGUMENT"));
    /* 1: what the command names does not exist: an entry, or a state. */
    ck_assert_int_eq(ctl("scan no-such-state 2>&1"), 1);
    ck_assert_ptr_nonnull(strstr(out, "no state 'no-such-state'"));
    ck_assert_int_eq(ctl("clear no-such-state --all 2>/dev/null"), 1);
    ck_assert_int_eq(ctl("scan users --key-groups 0-0 2>/dev/null"), 0); /* empty range: 0 */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s -a 127.0.0.1:1 ping 2>&1", statectl_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 3);
    ck_assert_ptr_nonnull(strstr(out, "127.0.0.1:1"));
}
END_TEST

/* Options (getopt_long): before the command (the global ones) or anywhere
 * after it, --name=value, -nVALUE, names in full (no abbreviations: "--add"
 * before the command is not --addr); a negative number is a
 * value; "--" ends the options; every mistake is a usage error (2) that
 * names the option. */
START_TEST(options_anywhere)
{
    ck_assert_int_eq(ctl("merge c k -5 --add"), 0);
    ck_assert_str_eq(out, "-5\n");
    ck_assert_int_eq(ctl("--add merge c k 2>&1"), 2); /* a command option before it */
    ck_assert_msg(strstr(out, "'--add' goes after the command"), "%s", out);
    ck_assert_int_eq(ctl("--json merge --add c k -2"), 0);
    ck_assert_str_eq(out, "{\"counter\":-7}\n");
    ck_assert_int_eq(ctl("get c --json k"), 0);
    ck_assert_str_eq(out, "{\"found\":true,\"kind\":\"counter\",\"value\":-7}\n");
    ck_assert_int_eq(ctl("put u k -1.5 -nw1"), 0);
    ck_assert_int_eq(ctl("get -n w1 u k"), 0);
    ck_assert_str_eq(out, "-1.5\n");
    ck_assert_int_eq(ctl("put u -- k --not-an-option"), 0);
    ck_assert_int_eq(ctl("get u k"), 0);
    ck_assert_str_eq(out, "--not-an-option\n");
    ck_assert_int_eq(ctl("put u k2 v --ttl=1h"), 0);
    ck_assert_int_eq(ctl("get u k2 --ttl"), 0); /* get's --ttl is a flag */
    ck_assert_msg(strncmp(out, "ttl: 59m", 8) == 0, "%s", out);
    ck_assert_int_eq(ctl("--timeout=2000 scan u --key-groups=0-127 --limit 5"), 0);
    ck_assert_int_eq(count_lines(out), 3);

    static const struct {
        const char *args, *says;
    } bad[] = {
        {"get u k --limit 3", "'--limit' is not an option of get"},
        {"get u k --frob", "unknown option '--frob'"},
        {"get u k -x", "unknown option '-x'"},
        {"get u k --json=1", "--json takes no value"},
        {"get u k --ttl=1s", "--ttl takes no value"},
        {"get u k -n", "-n needs a namespace"},
        {"put u k v --ttl", "--ttl needs a duration"},
        {"scan u --lim=1", "unknown option '--lim'"},
        {"--js ping", "unknown option '--js'"},
        {"scan u --limit 0", "--limit needs a positive number, not '0'"},
        {"scan u --key-groups 1", "--key-groups needs a range A-B, not '1'"},
        {"ttl u 1h --update sometimes", "--update needs on-create-and-write"},
        {"--timeout x ping", "--timeout needs a positive number of milliseconds"},
        {"ping extra", "unexpected argument 'extra'"},
        {"-a", "-a needs an address"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(ctl("%s 2>&1", bad[i].args) == 2, "%s: %s", bad[i].args, out);
        ck_assert_msg(strstr(out, bad[i].says), "%s: %s", bad[i].args, out);
    }
}
END_TEST

/* The exit status rule of statectl(1), one class at a time: 1 what the
 * command names is not there, 2 the command line is wrong (found before
 * anything is sent), 3 the server, the connection or a file failed. */
START_TEST(exit_status_classes)
{
    ck_assert_int_eq(ctl("put s k v"), 0);
    ck_assert_int_eq(ctl("merge l k x --append"), 0);
    ck_assert_int_eq(ctl("snapshot --id 1"), 0);
    char ck[300];
    snprintf(ck, sizeof(ck), "%s/checkpoints/chk-1", srv.dir);
    static const struct {
        int status;
        const char *args;
    } cases[] = {
        /* 0: found, or an existing state with nothing in range. */
        {0, "scan s --key-groups 0-0"},
        {0, "clear s no-such-key"},
        {0, "ttl s"},
        /* 1: not there. */
        {1, "get s nokey"},
        {1, "get nostate k"},
        {1, "del s nokey"},
        {1, "scan nostate"},
        {1, "scan nostate --key k"},
        {1, "clear nostate k"},
        {1, "clear nostate --all"},
        {1, "ttl nostate"},
        {1, "checkpoint rm 99"},
        {1, "restore 99"},
        {1, "checkpoint verify DIR/nowhere"},
        {1, "checkpoint dump CK --state nostate"},
        {1, "import DIR/no-such-file"},
        /* 2: the command line. */
        {2, "frobnicate"},
        {2, "get s"},
        {2, "get s k --limit 1"},
        {2, "scan s --key ''"},
        {2, "put s '' v"},
        {2, "get 'bad/name' k"},
        {2, "scan s --key-groups 9-3"},
        {2, "restore 1 --key-groups 9-3"},
        {2, "checkpoint dump CK --key-groups 9-3"},
        {2, "ttl s 10x"},
        {2, "checkpoint rm abc"},
        {2, "--hex get s zz"},
        {2, "merge s k 1"},
        {2, "--token-file DIR/no-token ping"},
        /* 3: refused by the server for what it holds or is, or a file. */
        {3, "put s k v --key-group 128"},
        {3, "scan s --key-groups 0-128"},
        {3, "merge l k 1 --add"},
        {3, "snapshot --id 1"},
        {3, "checkpoint dump CK --key-groups 0-128"},
        {3, "checkpoint inspect DIR"},
        {3, "import DIR"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* DIR: the test's directory; CK: the checkpoint in it. */
        char args[600];
        size_t n = 0;
        for (const char *c = cases[i].args; *c && n < sizeof(args) - 300;) {
            const char *with = strncmp(c, "DIR", 3) == 0  ? srv.dir
                               : strncmp(c, "CK", 2) == 0 ? ck
                                                          : NULL;
            if (with) {
                n += (size_t)snprintf(args + n, sizeof(args) - n, "%s", with);
                c += with == ck ? 2 : 3;
            } else {
                args[n++] = *c++;
            }
        }
        args[n] = '\0';
        int st = ctl("%s 2>&1", args);
        ck_assert_msg(st == cases[i].status, "statectl %s: exit %d, want %d: %s", args, st,
                      cases[i].status, out);
    }
    /* 3: the connection. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s -a unix:%s/no-socket ping 2>/dev/null", statectl_path(),
             srv.dir);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 3);
    /* 2: an address that is not one. */
    snprintf(cmd, sizeof(cmd), "%s -a 127.0.0.1:xx ping 2>/dev/null", statectl_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 2);
}
END_TEST

START_TEST(json_and_hex)
{
    ck_assert_int_eq(ctl("--hex put bin 00ff 0001"), 0);
    ck_assert_int_eq(ctl("--hex get bin 00ff"), 0);
    ck_assert_str_eq(out, "0001\n");
    ck_assert_int_eq(ctl("--json get bin 'x' 2>/dev/null"), 1);
    ck_assert_int_eq(ctl("put j k 'say \"hi\"'"), 0);
    ck_assert_int_eq(ctl("--json get j k"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"value\":\"say \\\"hi\\\"\""));
    ck_assert_ptr_nonnull(strstr(out, "\"kind\":\"raw\""));
    ck_assert_int_eq(ctl("--json states"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"name\":\"j\""));
    ck_assert_int_eq(ctl("--hex get bin zz 2>/dev/null"), 2); /* not hex */
    /* A byte 0xff and the character U+00FF (c3 bf) are told apart: bytes
     * that are not UTF-8 come as {"hex":...}. */
    ck_assert_int_eq(ctl("--hex put bin 01 ff"), 0);
    ck_assert_int_eq(ctl("--hex put bin 02 c3bf"), 0);
    ck_assert_int_eq(ctl("--json get bin $(printf '\\001')"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"value\":{\"hex\":\"ff\"}"));
    ck_assert_int_eq(ctl("--json get bin $(printf '\\002')"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"value\":\"\xc3\xbf\""));
    ck_assert_int_eq(ctl("--json scan bin"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"key\":{\"hex\":\"00ff\"}"));
}
END_TEST

START_TEST(merge_counter_and_list)
{
    ck_assert_int_eq(ctl("merge clicks page1 5 --add"), 0);
    ck_assert_str_eq(out, "5\n");
    ck_assert_int_eq(ctl("merge clicks page1 -7 --add"), 0);
    ck_assert_str_eq(out, "-2\n");
    ck_assert_int_eq(ctl("get clicks page1"), 0);
    ck_assert_str_eq(out, "-2\n");
    ck_assert_int_eq(ctl("merge clicks page1 12x --add 2>/dev/null"), 2);
    ck_assert_int_eq(ctl("merge events u1 first --append"), 0);
    ck_assert_int_eq(ctl("merge events u1 second --append"), 0);
    ck_assert_int_eq(ctl("get events u1"), 0);
    ck_assert_str_eq(out, "first\nsecond\n");
    ck_assert_int_eq(ctl("--json get events u1"), 0);
    ck_assert_ptr_nonnull(strstr(out, "[\"first\",\"second\"]"));
    ck_assert_int_eq(ctl("merge events u1 1 --add 2>&1"), 3);
    ck_assert_ptr_nonnull(strstr(out, "INVALID_ARGUMENT"));
}
END_TEST

START_TEST(scan_clear_states_stats)
{
    char cmd[4096];
    /* 30 namespaces of one key, 20 other keys, put through one shell loop. */
    snprintf(cmd, sizeof(cmd),
             "for i in $(seq 1 30); do %s -a %s put m user v$i -n ns$i || exit 9; done; "
             "for i in $(seq 1 20); do %s -a %s put m other$i x || exit 9; done",
             statectl_path(), srv.tcp_addr, statectl_path(), srv.tcp_addr);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_int_eq(ctl("scan m"), 0);
    ck_assert_int_eq(count_lines(out), 50);
    ck_assert_int_eq(ctl("scan m --key user"), 0);
    ck_assert_int_eq(count_lines(out), 30);
    ck_assert_int_eq(ctl("scan m --limit 7"), 0);
    ck_assert_int_eq(count_lines(out), 7);
    ck_assert_int_eq(ctl("scan m --key-groups 0-127"), 0);
    ck_assert_int_eq(count_lines(out), 50);
    ck_assert_int_eq(ctl("scan m --key-groups 9-3 2>/dev/null"), 2);   /* A > B: usage */
    ck_assert_int_eq(ctl("scan m --key-groups 0-128 2>/dev/null"), 3); /* beyond: the server's */
    ck_assert_int_eq(ctl("--json scan m --key user --limit 2"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"complete\":false"));

    ck_assert_int_eq(ctl("clear m user"), 0);
    ck_assert_int_eq(ctl("scan m --key user"), 0);
    ck_assert_int_eq(count_lines(out), 0);
    ck_assert_int_eq(ctl("states"), 0);
    ck_assert_ptr_nonnull(strstr(out, "m\t20\t"));
    /* Clearing the only key of a state empties it. */
    ck_assert_int_eq(ctl("put solo k v -n a"), 0);
    ck_assert_int_eq(ctl("put solo k v -n b"), 0);
    ck_assert_int_eq(ctl("clear solo k"), 0);
    ck_assert_str_eq(out, "2\n");
    ck_assert_int_eq(ctl("get solo k -n a 2>/dev/null"), 1);
    ck_assert_int_eq(ctl("clear m --all"), 0);
    /* An emptied state still exists (with no entries); a dropped one does not. */
    ck_assert_int_eq(ctl("states"), 0);
    ck_assert_str_eq(out, "solo\t0\t0\n");
    ck_assert_int_eq(ctl("stats"), 0);
    ck_assert_ptr_nonnull(strstr(out, "connections_current"));
    ck_assert_ptr_nonnull(strstr(out, "map_size"));
    ck_assert_int_eq(ctl("--json stats"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"key_groups\":128"));
    /* statectl(1), stats: the histogram's buckets run from 2 us to 10 s. */
    ck_assert_msg(strstr(out, "\"latency_bounds_us\":[2,5,") && strstr(out, ",10000000],\"ops\""),
                  "%s", out);
}
END_TEST

START_TEST(unix_socket_env_and_help)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "STATESRV_ADDR=%s %s put u k v && STATESRV_ADDR=%s %s get u k",
             srv.unix_addr, statectl_path(), srv.unix_addr, statectl_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "v\n");
    snprintf(cmd, sizeof(cmd), "%s --help", statectl_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "Exit status"));
    snprintf(cmd, sizeof(cmd), "%s scan --help", statectl_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "--key-groups"));
    /* Bash completion (conf/statectl.bash, above build/ or build/sanitize/): a command's
     * options after it; what follows an option with a value (--prefix P) is
     * that value, not an option to complete. */
    char bash[1024];
    snprintf(bash, sizeof(bash),
             "d=$(dirname %s); while [ ! -f \"$d/conf/statectl.bash\" ] && [ \"$d\" != / ]; "
             "do d=$(dirname \"$d\"); done; bash -c 'source \"$1\"/conf/statectl.bash; "
             "COMP_WORDS=(\"$2\" scan s --pre); COMP_CWORD=3; _statectl; echo \"${COMPREPLY[*]}\"; "
             "COMPREPLY=(); COMP_WORDS=(\"$2\" scan s --prefix -); COMP_CWORD=4; _statectl; "
             "echo \"[${COMPREPLY[*]}]\"' _ \"$d\" %s",
             statectl_path(), statectl_path());
    ck_assert_int_eq(run_cmd(bash, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "--prefix\n[]\n");
}
END_TEST

/* A copied checkpoint directory and one with a damaged MANIFEST are named
 * in the listing as what they are, not listed under another id or hidden;
 * a restore of the copy is refused. */
/* info says where the server is: what an operator needs at 3 a.m. */
START_TEST(info_says_where_the_server_is)
{
    ck_assert_int_eq(ctl("info"), 0);
    char want[600];
    snprintf(want, sizeof(want), "data_dir: %s/data\n", srv.dir);
    ck_assert_msg(strstr(out, want), "%s", out);
    snprintf(want, sizeof(want), "checkpoint_dir: %s/checkpoints\n", srv.dir);
    ck_assert_msg(strstr(out, want), "%s", out);
    snprintf(want, sizeof(want), "listen: %s\n", srv.tcp_addr);
    ck_assert_msg(strstr(out, want), "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "served_key_groups: 0-127\n"));
    ck_assert_ptr_nonnull(strstr(out, "sync: none\n"));
    ck_assert_ptr_nonnull(strstr(out, "uptime_seconds: "));
    ck_assert_int_eq(ctl("--json info"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"kg_first\":0,\"kg_last\":127"));
}
END_TEST

/* export -> import -> the same scan: scan --jsonl and checkpoint dump
 * --json read back by import, every kind, namespaces, explicit key groups
 * and bytes that are not UTF-8; bad lines are named and refused. */
START_TEST(import_reads_back_what_scan_and_dump_write)
{
    ck_assert_int_eq(ctl("put users alice '{\"plan\":\"pro\"}'"), 0);
    ck_assert_int_eq(ctl("put users alice 3 -n w1"), 0);
    ck_assert_int_eq(ctl("--hex put users 626f62 ff00fe"), 0);
    ck_assert_int_eq(ctl("put users k9 v --key-group 7"), 0);
    ck_assert_int_eq(ctl("merge clicks alice 42 --add"), 0);
    ck_assert_int_eq(ctl("merge ev alice login --append"), 0);
    ck_assert_int_eq(ctl("merge ev alice logout --append"), 0);
    static char before[3][sizeof(out)];
    const char *states[] = {"users", "clicks", "ev"};
    char file[300], cmd[1024];
    snprintf(file, sizeof(file), "%s/export.jsonl", srv.dir);
    unlink(file);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ctl("scan %s", states[i]), 0);
        memcpy(before[i], out, sizeof(out));
        ck_assert_int_eq(ctl("scan %s --jsonl >> %s", states[i], file), 0);
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ctl("clear %s --all", states[i]), 0);
    ck_assert_int_eq(ctl("import %s", file), 0);
    ck_assert_str_eq(out, "imported 6 entries\n");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ctl("scan %s", states[i]), 0);
        ck_assert_str_eq(out, before[i]);
    }
    /* A checkpoint dump reads back too (from standard input). */
    ck_assert_int_eq(ctl("snapshot --id 3"), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ctl("clear %s --all", states[i]), 0);
    snprintf(cmd, sizeof(cmd), "--json checkpoint dump %s/checkpoints/chk-3 | %s -a %s import",
             srv.dir, statectl_path(), srv.tcp_addr);
    ck_assert_int_eq(ctl("%s", cmd), 0);
    ck_assert_ptr_nonnull(strstr(out, "imported 6 entries"));
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ctl("scan %s", states[i]), 0);
        ck_assert_str_eq(out, before[i]);
    }
    /* A prefix filters composite keys across key groups. */
    ck_assert_int_eq(ctl("scan users --prefix al"), 0);
    ck_assert_int_eq(count_lines(out), 2);
    ck_assert_int_eq(ctl("scan users --prefix al --limit 1"), 0);
    ck_assert_int_eq(count_lines(out), 1);
    ck_assert_int_eq(ctl("scan users --prefix zz"), 0);
    ck_assert_int_eq(count_lines(out), 0);
    /* Bad input: the line and field are named, exit 2. */
    ck_assert_int_eq(
        ctl("import - 2>&1 <<'EOF'\n{\"state\":\"s\",\"key\":\"k\",\"value\":\"v\"}\n"
            "{\"state\":\"s\",\"key\":\"k\",\"kind\":\"counter\",\"value\":\"x\"}\nEOF"),
        2);
    ck_assert_ptr_nonnull(strstr(out, "-:2: value: a counter's value is not an integer"));
    ck_assert_int_eq(ctl("import - 2>&1 <<'EOF'\nnot json\nEOF"), 2);
    ck_assert_ptr_nonnull(strstr(out, "-:1: not JSON"));
    ck_assert_int_eq(ctl("import %s/missing.jsonl 2>&1", srv.dir), 1);
}
END_TEST

/* Random bytes that hit the edges of both directions: NUL, control
 * characters, quote and backslash, bytes that are not UTF-8, and valid
 * multi-byte UTF-8 (U+00FF, U+20AC, U+1F600). */
static size_t random_bytes(unsigned char *b, size_t max)
{
    static const char *const utf8[] = {"\xc3\xbf", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\"", "\\",
                                       "\n",       "\x7f"};
    size_t n = (size_t)rand() % (max + 1), i = 0;
    while (i < n) {
        int r = rand() % 10;
        if (r < 4) { /* any byte */
            b[i++] = (unsigned char)rand();
        } else if (r < 5) {
            b[i++] = 0;
        } else if (r < 7) {
            const char *u = utf8[rand() % (int)(sizeof(utf8) / sizeof(utf8[0]))];
            size_t l = strlen(u);
            if (i + l > n)
                break;
            memcpy(b + i, u, l);
            i += l;
        } else { /* printable ASCII */
            b[i++] = (unsigned char)(0x20 + rand() % 95);
        }
    }
    return i;
}

/* Both random states, --hex, into FILE in the test's directory. */
static void scan_both(const char *file)
{
    ck_assert_int_eq(ctl("--hex scan rb1 > %s/%s", srv.dir, file), 0);
    ck_assert_int_eq(ctl("--hex scan rb2 >> %s/%s", srv.dir, file), 0);
}

static void clear_both(void)
{
    ck_assert_int_eq(ctl("clear rb1 --all"), 0);
    ck_assert_int_eq(ctl("clear rb2 --all"), 0);
}

/* The states read back exactly as they were exported. */
static void check_same(unsigned seed, const char *how)
{
    char cmd[400];
    scan_both("after");
    snprintf(cmd, sizeof(cmd), "cmp %s/before %s/after 2>&1", srv.dir, srv.dir);
    ck_assert_msg(run_cmd(cmd, out, sizeof(out)) == 0, "seed %u: %s: %s", seed, how, out);
}

/* export -> import -> an identical scan, on random binary keys, namespaces
 * and values of every kind: scan --jsonl, scan --json (one document),
 * --hex, and checkpoint dump --json. */
START_TEST(round_trip_of_random_binary_data)
{
    unsigned seed = (unsigned)ts_now_ms() ^ (unsigned)getpid();
    srand(seed);
    statesrv *c;
    char err[256];
    ck_assert_int_eq(statesrv_connect2(srv.tcp_addr, NULL, &c, err, sizeof(err)), STATESRV_OK);
    static const char *const states[] = {"rb1", "rb2"};
    for (int i = 0; i < 300; i++) {
        unsigned char key[48], ns[16], val[256];
        /* Two bytes of i make each key unique (and are binary too). */
        statesrv_key k = {.state = states[i % 2], .key = key, .ns = ns};
        key[0] = (unsigned char)(i >> 8);
        key[1] = (unsigned char)i;
        k.key_len = 2 + random_bytes(key + 2, sizeof(key) - 2);
        k.ns_len = random_bytes(ns, sizeof(ns));
        if (rand() % 4 == 0) {
            k.has_key_group = 1;
            k.key_group = (uint32_t)(rand() % 128);
        }
        int kind = rand() % 3, rc = STATESRV_OK;
        if (kind == 0) {
            rc = statesrv_put(c, &k, val, random_bytes(val, sizeof(val)));
        } else if (kind == 1) {
            for (int e = 1 + rand() % 4; e > 0 && rc == STATESRV_OK; e--)
                rc = statesrv_append(c, &k, val, random_bytes(val, 40));
        } else {
            uint64_t r = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 2) ^ (uint64_t)rand();
            int64_t total;
            rc = statesrv_add(c, &k, i == 2 ? INT64_MIN : (int64_t)r, &total);
        }
        ck_assert_msg(rc == STATESRV_OK, "seed %u: entry %d: %s", seed, i, statesrv_errmsg(c));
    }
    statesrv_close(c);
    scan_both("before");

    /* JSON lines, as they are and with --hex. */
    static const char *const modes[] = {"", "--hex "};
    for (int m = 0; m < 2; m++) {
        ck_assert_int_eq(ctl("%sscan rb1 --jsonl > %s/x", modes[m], srv.dir), 0);
        ck_assert_int_eq(ctl("%sscan rb2 --jsonl >> %s/x", modes[m], srv.dir), 0);
        clear_both();
        ck_assert_msg(ctl("%simport %s/x 2>&1", modes[m], srv.dir) == 0, "seed %u: %s", seed, out);
        ck_assert_str_eq(out, "imported 300 entries\n");
        check_same(seed, m ? "--hex scan --jsonl" : "scan --jsonl");
    }
    /* One --json document per state, put back with --state. */
    ck_assert_int_eq(ctl("--json scan rb1 > %s/x1", srv.dir), 0);
    ck_assert_int_eq(ctl("--json scan rb2 > %s/x2", srv.dir), 0);
    clear_both();
    ck_assert_int_eq(ctl("import %s/x1 --state rb1", srv.dir), 0);
    ck_assert_int_eq(ctl("import --state rb2 %s/x2", srv.dir), 0);
    check_same(seed, "--json scan");
    /* A checkpoint's dump. */
    ck_assert_int_eq(ctl("snapshot --id 5"), 0);
    clear_both();
    ck_assert_msg(ctl("--json checkpoint dump %s/checkpoints/chk-5 | %s -a %s import 2>&1", srv.dir,
                      statectl_path(), srv.tcp_addr) == 0,
                  "seed %u: %s", seed, out);
    ck_assert_str_eq(out, "imported 300 entries\n");
    check_same(seed, "checkpoint dump --json");
}
END_TEST

START_TEST(checkpoints_lists_what_is_wrong)
{
    ck_assert_int_eq(ctl("put u a 1"), 0);
    ck_assert_int_eq(ctl("snapshot"), 0);
    ck_assert_int_eq(ctl("put u b 2"), 0);
    ck_assert_int_eq(ctl("snapshot"), 0);
    char cmd[1024];
    snprintf(
        cmd, sizeof(cmd),
        "cp -r %s/checkpoints/chk-1 %s/checkpoints/chk-7 && "
        "head -c 20 %s/checkpoints/chk-2/MANIFEST > %s/m && mv %s/m %s/checkpoints/chk-2/MANIFEST",
        srv.dir, srv.dir, srv.dir, srv.dir, srv.dir, srv.dir);
    ck_assert_int_eq(run_cmd(cmd, NULL, 0), 0);
    ck_assert_int_eq(ctl("checkpoints"), 0);
    ck_assert_int_eq(count_lines(out), 4); /* header, chk-1, two problems */
    ck_assert_msg(strstr(out, "chk-7 is not a checkpoint: ") &&
                      strstr(out, "holds the MANIFEST of checkpoint 1, not 7"),
                  "%s", out);
    ck_assert_msg(strstr(out, "chk-2 is not a checkpoint: "), "%s", out);
    ck_assert_int_eq(ctl("--json checkpoints"), 0);
    ck_assert_msg(strncmp(out, "{\"checkpoints\":[{", 17) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "\"problems\":[{\"id\":2,"));
    ck_assert_ptr_nonnull(strstr(out, "{\"id\":7,"));
    ck_assert_int_eq(ctl("restore 7 2>&1"), 3);
    ck_assert_ptr_nonnull(strstr(out, "holds the MANIFEST of checkpoint 1"));
    snprintf(cmd, sizeof(cmd), "%s/checkpoints/chk-7", srv.dir);
    ck_assert_int_eq(ctl("checkpoint verify %s 2>&1", cmd), 3);
}
END_TEST

START_TEST(checkpoint_commands)
{
    ck_assert_int_eq(ctl("put u a 1"), 0);
    ck_assert_int_eq(ctl("put u b 2 -n w"), 0);
    ck_assert_int_eq(ctl("merge c x 5 --add"), 0);
    ck_assert_int_eq(ctl("snapshot --id 9"), 0);
    /* As statectl(1), EXAMPLES, shows them. */
    char want[400];
    snprintf(want, sizeof(want), "checkpoint 9: %s/checkpoints/chk-9 (full, ", srv.dir);
    ck_assert_msg(strncmp(out, want, strlen(want)) == 0 && strstr(out, " bytes added)\n"), "%s",
                  out);
    ck_assert_int_eq(ctl("--json snapshot"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"checkpoint_id\":10"));
    ck_assert_ptr_nonnull(strstr(out, "\"entries\":3"));
    ck_assert_int_eq(ctl("checkpoints"), 0);
    ck_assert_int_eq(count_lines(out), 3); /* header + 2 */
    static const char head[] = "ID  CREATED               KIND         BASE  ENTRIES  "
                               "ADDED_BYTES  TOTAL_BYTES  DURATION_MS  KEY_GROUPS  REMOTE\n";
    ck_assert_msg(strncmp(out, head, strlen(head)) == 0, "%s", out);
    ck_assert_int_eq(ctl("snapshot --id 9 2>&1"), 3);
    ck_assert_ptr_nonnull(strstr(out, "already exists"));

    /* Offline tools, on files alone. */
    char path[256];
    snprintf(path, sizeof(path), "%s/checkpoints/chk-9", srv.dir);
    ck_assert_int_eq(ctl("checkpoint verify %s", path), 0);
    ck_assert_ptr_nonnull(strstr(out, "ok: 3 entries"));
    ck_assert_msg(strstr(out, " bytes in 1 file(s)\n"), "%s", out);
    ck_assert_int_eq(ctl("checkpoint inspect %s", path), 0);
    ck_assert_ptr_nonnull(strstr(out, "state u: entries 2"));
    ck_assert_int_eq(ctl("--json checkpoint inspect %s", path), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"key_groups\":128"));
    ck_assert_int_eq(ctl("checkpoint dump %s", path), 0);
    ck_assert_int_eq(count_lines(out), 3);
    ck_assert_int_eq(ctl("checkpoint dump %s --state u", path), 0);
    static char dump[sizeof(out)];
    memcpy(dump, out, sizeof(out));
    ck_assert_int_eq(ctl("scan u"), 0);
    ck_assert_str_eq(dump, out); /* a dump reads like a scan */

    /* Restore brings back the snapshot's values. */
    ck_assert_int_eq(ctl("put u a changed"), 0);
    ck_assert_int_eq(ctl("restore 9"), 0);
    ck_assert_ptr_nonnull(strstr(out, "restored 3 entries in 2 state(s)"));
    ck_assert_int_eq(ctl("get u a"), 0);
    ck_assert_str_eq(out, "1\n");

    /* A corrupted file: verify and restore refuse, live state untouched. */
    char data[300];
    snprintf(data, sizeof(data), "%s/data", path);
    FILE *f = fopen(data, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 100, SEEK_SET);
    int b = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(b ^ 0xff, f);
    fclose(f);
    ck_assert_int_eq(ctl("checkpoint verify %s 2>&1", path), 3);
    ck_assert_ptr_nonnull(strstr(out, "checksum"));
    ck_assert_int_eq(ctl("put u a live"), 0);
    ck_assert_int_eq(ctl("restore 9 2>&1"), 3);
    ck_assert_ptr_nonnull(strstr(out, "checksum")); /* the block, named as it is loaded */
    ck_assert_int_eq(ctl("get u a"), 0);
    ck_assert_str_eq(out, "live\n");

    ck_assert_int_eq(ctl("checkpoint rm 10"), 0);
    ck_assert_int_eq(ctl("checkpoint rm 10 2>/dev/null"), 1);
    ck_assert_int_eq(ctl("restore 77 2>/dev/null"), 1);
    ck_assert_int_eq(ctl("checkpoint verify /nonexistent 2>/dev/null"), 1);
}
END_TEST

Suite *sv_suite_statectl(void)
{
    Suite *s = suite_create("statectl");
    TCase *tc = tcase_create("statectl");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, put_get_del_exit_codes);
    tcase_add_test(tc, options_anywhere);
    tcase_add_test(tc, exit_status_classes);
    tcase_add_test(tc, json_and_hex);
    tcase_add_test(tc, merge_counter_and_list);
    tcase_add_test(tc, scan_clear_states_stats);
    tcase_add_test(tc, unix_socket_env_and_help);
    tcase_add_test(tc, checkpoint_commands);
    tcase_add_test(tc, checkpoints_lists_what_is_wrong);
    tcase_add_test(tc, import_reads_back_what_scan_and_dump_write);
    tcase_add_test(tc, info_says_where_the_server_is);
    tcase_add_test(tc, round_trip_of_random_binary_data);
    suite_add_tcase(s, tc);
    return s;
}
