/* statesrvd: argv, configuration, store, loop. Glue only. */
#include "checkpoint.h"
#include "config.h"
#include "failpoint.h"
#include "readgroup.h"
#include "server.h"
#include "store.h"
#include "sv_error.h"
#include "sv_log.h"
#include "sv_msg.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uv.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: statesrvd [OPTION]...\n"
            "Keyed-state server for stream processors: a sidecar that stores keyed state in\n"
            "LMDB and serves it over protobuf-framed TCP and a Unix socket.\n"
            "\n"
            "  -c, --config FILE        read settings from FILE (key = value; see\n"
            "                           conf/statesrvd.conf); flags below override it\n"
            "  -l, --listen HOST:PORT   TCP address (default 127.0.0.1:7420; '' for none)\n"
            "  -u, --unix PATH          also listen on a Unix socket (unix_socket_mode,\n"
            "                           default 0600)\n"
            "  -d, --data-dir DIR       where the LMDB store lives\n"
            "                           (default /var/lib/statesrvd/data)\n"
            "      --checkpoint-dir DIR where checkpoints are written\n"
            "  -k, --key-groups N       key groups (max parallelism), 1..32768, fixed when\n"
            "                           a data directory is created (default 128)\n"
            "      --sync MODE          none (default) or always\n"
            "      --restore-from SRC   before serving, replace the state with checkpoint SRC\n"
            "                           (an id in checkpoint_dir or a path under\n"
            "                           restore_roots); repeat, or separate with commas,\n"
            "                           to merge several (rescaling)\n"
            "      --restore-key-groups A-B  take only key groups A..B from the sources\n"
            "      --metrics-listen HOST:PORT  serve Prometheus metrics at\n"
            "                           http://HOST:PORT/metrics (default: off)\n"
            "      --log-level LEVEL    debug, info, warn or error\n"
            "      --check-config       read and check the configuration (file and flags),\n"
            "                           print the settings in effect, and exit: 0 if valid\n"
            "      --settings           list every setting: name, default, range, what it does\n"
            "  -h, --help               show this help\n"
            "  -V, --version            show the version\n"
            "\n"
            "Signals: SIGTERM or SIGINT stop accepting, answer what was read, commit and exit.\n");
}

int main(int argc, char **argv)
{
    enum {
        OPT_CHECKPOINT_DIR = 256,
        OPT_SYNC,
        OPT_LOG_LEVEL,
        OPT_RESTORE_FROM,
        OPT_RESTORE_KG,
        OPT_METRICS_LISTEN,
        OPT_SETTINGS,
        OPT_CHECK_CONFIG
    };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"unix", required_argument, NULL, 'u'},
        {"data-dir", required_argument, NULL, 'd'},
        {"checkpoint-dir", required_argument, NULL, OPT_CHECKPOINT_DIR},
        {"key-groups", required_argument, NULL, 'k'},
        {"sync", required_argument, NULL, OPT_SYNC},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
        {"restore-from", required_argument, NULL, OPT_RESTORE_FROM},
        {"restore-key-groups", required_argument, NULL, OPT_RESTORE_KG},
        {"settings", no_argument, NULL, OPT_SETTINGS},
        {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* Flags win over the file whatever their order: collect them first. */
    const char *config_path = NULL;
    int check_only = 0;
    struct {
        const char *name, *value;
    } overrides[64];
    size_t noverrides = 0;
    char *restore_sources[SV_RESTORE_MAX_SOURCES];
    char restore_args[4096] = "";
    struct sv_startup_restore restore = {.sources = restore_sources};
    int c;
    while ((c = getopt_long(argc, argv, "c:l:u:d:k:hV", opts, NULL)) != -1) {
        const char *name = NULL;
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            name = "listen";
            break;
        case 'u':
            name = "unix_socket";
            break;
        case 'd':
            name = "data_dir";
            break;
        case OPT_CHECKPOINT_DIR:
            name = "checkpoint_dir";
            break;
        case 'k':
            name = "key_groups";
            break;
        case OPT_SYNC:
            name = "sync";
            break;
        case OPT_LOG_LEVEL:
            name = "log_level";
            break;
        case OPT_METRICS_LISTEN:
            name = "metrics_listen";
            break;
        case OPT_RESTORE_FROM: {
            /* Repeatable, and each may be a comma-separated list. */
            size_t used = strlen(restore_args);
            if (used + strlen(optarg) + 2 > sizeof(restore_args)) {
                fprintf(stderr, "statesrvd: --restore-from: too many sources\n");
                return 2;
            }
            snprintf(restore_args + used, sizeof(restore_args) - used, "%s%s", used ? "," : "",
                     optarg);
            break;
        }
        case OPT_RESTORE_KG: {
            unsigned a, b;
            char tail;
            if (sscanf(optarg, "%u-%u%c", &a, &b, &tail) != 2 || a > b) {
                fprintf(stderr, "statesrvd: --restore-key-groups '%s': expected A-B\n", optarg);
                return 2;
            }
            restore.has_range = 1;
            restore.first = a;
            restore.last = b;
            break;
        }
        case OPT_CHECK_CONFIG:
            check_only = 1;
            break;
        case OPT_SETTINGS:
            sv_config_print_settings(stdout);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("statesrvd %s (protocol %u)\n", SV_VERSION, SV_PROTOCOL_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (name) {
            if (noverrides == sizeof(overrides) / sizeof(overrides[0])) {
                fprintf(stderr, "statesrvd: too many options\n");
                return 2;
            }
            overrides[noverrides].name = name;
            overrides[noverrides].value = optarg;
            noverrides++;
        }
    }
    for (char *save = NULL, *t = strtok_r(restore_args, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (restore.nsources == SV_RESTORE_MAX_SOURCES) {
            fprintf(stderr, "statesrvd: at most %d restore sources\n", SV_RESTORE_MAX_SOURCES);
            return 2;
        }
        restore_sources[restore.nsources++] = t;
    }
    if (restore.has_range && !restore.nsources) {
        fprintf(stderr, "statesrvd: --restore-key-groups needs --restore-from\n");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "statesrvd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct sv_config cfg;
    char err[1024];
    sv_config_defaults(&cfg);
    if (config_path && sv_config_load(&cfg, config_path, err, sizeof(err))) {
        fprintf(stderr, "statesrvd: %s\n", err);
        return 1;
    }
    if (config_path && !realpath(config_path, cfg.config_file))
        snprintf(cfg.config_file, sizeof(cfg.config_file), "%s", config_path);
    for (size_t i = 0; i < noverrides; i++) {
        if (sv_config_set(&cfg, overrides[i].name, overrides[i].value, err, sizeof(err))) {
            fprintf(stderr, "statesrvd: command line: %s\n", err);
            return 2;
        }
    }
    if (sv_config_validate(&cfg, err, sizeof(err))) {
        fprintf(stderr, "statesrvd: %s%s%s\n", config_path ? config_path : "",
                config_path ? " (with flags): " : "", err);
        return 1;
    }
    sv_log_set_level(cfg.log_level);
    sv_failpoint_init();
    signal(SIGPIPE, SIG_IGN);
    if (sv_server_check_exposure(&cfg, err, sizeof(err))) {
        fprintf(stderr, "statesrvd: %s\n", err);
        return 1;
    }
    if (check_only) {
        /* Like nginx -t: nothing is bound, opened or created. */
        sv_config_print_effective(&cfg, stdout);
        fprintf(stderr, "statesrvd: the configuration%s%s is valid\n", config_path ? " in " : "",
                config_path ? config_path : "");
        return 0;
    }
    if (sv_server_probe_listen(&cfg, err, sizeof(err))) {
        fprintf(stderr, "statesrvd: %s\n", err);
        return 1;
    }

    struct sv_store_options so = {
        .dir = cfg.data_dir,
        .map_size = cfg.map_size,
        .map_size_max = cfg.map_size_max,
        .max_states = cfg.max_states,
        .max_value_size = cfg.max_value_size,
        .sync_always = cfg.sync == SV_SYNC_ALWAYS,
        .writemap = cfg.writemap < 0 ? cfg.sync == SV_SYNC_NONE : cfg.writemap,
        .key_groups = cfg.key_groups,
        .key_groups_set = cfg.key_groups_set,
        .untracked = !cfg.checkpoint_incremental,
        .changes_max = cfg.checkpoint_changes_max,
    };
    if (cfg.local_read_group[0]) {
        if (sv_readgroup_resolve(cfg.local_read_group, &so.read_gid, err, sizeof(err))) {
            sv_error("%s", err);
            return 1;
        }
        so.read_group_set = 1;
    }
    struct sv_store *store;
    if (sv_store_open(&so, &store, err, sizeof(err))) {
        sv_error("%s", err);
        return 1;
    }

    uv_loop_t loop;
    if (uv_loop_init(&loop)) {
        sv_error("cannot create the event loop");
        sv_store_close(store);
        return 1;
    }
    struct sv_server srv;
    int code = 0;
    if (sv_server_init(&srv, &loop, &cfg, store, &restore, err, sizeof(err))) {
        sv_error("%s", err);
        code = 1;
    } else {
        sv_info("statesrvd %s ready (pid %ld)", SV_VERSION, (long)getpid());
        /* Type=notify: ready once listening, after any --restore-from. */
        sd_notifyf(0, "READY=1\nSTATUS=serving\nMAINPID=%ld", (long)getpid());
        code = sv_server_run(&srv);
    }
    sv_server_free(&srv);
    uv_loop_close(&loop);
    sv_store_close(store);
    if (code == 0)
        sv_info("statesrvd stopped cleanly");
    return code;
}
