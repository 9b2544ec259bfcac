/* statesrvd configuration: defaults, the INI file (parsed with libinih) and
 * command-line overrides. A bad file refuses to start, naming file and line. */
#ifndef SV_CONFIG_H
#define SV_CONFIG_H

#include "sv_log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SV_PATH_MAX 4096

enum sv_sync_mode { SV_SYNC_NONE, SV_SYNC_ALWAYS };

struct sv_config {
    char listen[256];              /* "host:port"; empty: no TCP listener */
    char metrics_listen[256];      /* HTTP /metrics "host:port"; empty: off */
    char unix_socket[SV_PATH_MAX]; /* empty: no Unix socket */
    unsigned unix_socket_mode;
    char data_dir[SV_PATH_MAX];
    char local_read_group[64]; /* group given read access for local readers; empty: none */
    char checkpoint_dir[SV_PATH_MAX];
    char config_file[SV_PATH_MAX];    /* the file read (-c), "" if none (not a setting) */
    uint32_t checkpoint_retain;       /* completed checkpoints kept */
    uint32_t checkpoint_interval;     /* seconds between scheduled checkpoints; 0: none */
    uint32_t ttl_sweep_budget;        /* % of the loop's time for the TTL sweep; 0: none */
    int checkpoint_incremental;       /* snapshots write changes only */
    uint32_t checkpoint_chain_max;    /* files a checkpoint may be made of */
    uint32_t checkpoint_chain_ratio;  /* % of the full file the increments may add */
    uint64_t checkpoint_changes_max;  /* the change log's bound, bytes */
    int checkpoint_compression;       /* enum sv_ckpt_compression */
    int checkpoint_compression_level; /* zstd level */
    char restore_roots[SV_PATH_MAX];  /* ':'-separated directories */
    char checkpoint_remote[1024];     /* s3://BUCKET/PREFIX; empty: no remote copies */
    char checkpoint_remote_node[129]; /* this sidecar's sub-prefix; empty: the host name */
    char restore_remote_roots[4096];  /* ','-separated s3:// prefixes restore may also read */
    char s3_endpoint[512];            /* http(s)://HOST[:PORT]; empty: AWS S3 of s3_region */
    char s3_region[64];
    char s3_credentials_file[SV_PATH_MAX];
    uint32_t s3_upload_concurrency;  /* parts in flight at once */
    uint64_t s3_part_size;           /* multipart part size (at least) */
    uint64_t s3_multipart_threshold; /* larger files are multipart; 0: s3_part_size */
    uint32_t s3_max_parts;           /* the store's limit of parts in one upload */
    int s3_checksum;                 /* enum sv_s3_checksum: md5 or crc32c */
    uint32_t key_groups;
    int key_groups_set; /* set by the file or a flag (vs. default) */
    uint32_t max_states;
    uint64_t map_size;     /* initial LMDB map size */
    uint64_t map_size_max; /* growth stops here */
    enum sv_sync_mode sync;
    int writemap; /* LMDB writes through its map (sv_store_options); -1 auto: with sync none */
    uint32_t max_frame_size;
    uint32_t max_value_size;
    uint32_t max_batch_ops;
    uint32_t max_scan_limit;
    uint32_t max_connections;
    uint64_t max_output_buffer;        /* per connection: stop reading above this */
    char auth_token_file[SV_PATH_MAX]; /* empty: no authentication */
    int allow_insecure_remote;         /* non-loopback TCP without a token */
    uint32_t idle_timeout;             /* seconds; 0: never */
    uint32_t header_timeout;           /* seconds a partial frame may stall */
    uint32_t output_timeout;           /* seconds replies may stay unread over the limit */
    enum sv_log_level log_level;
};

/* Fills in every default. */
void sv_config_defaults(struct sv_config *cfg);

/* Reads `path` over the current values. 0, or SV_EINVAL with a message
 * "FILE:LINE: what is wrong" in err; -errno if the file cannot be read. */
int sv_config_load(struct sv_config *cfg, const char *path, char *err, size_t errlen);

/* Sets one setting by name, as the file would ("max_states", "64"). 0 or
 * SV_EINVAL with a reason in err. Used for the file and for flags. */
int sv_config_set(struct sv_config *cfg, const char *name, const char *value, char *err,
                  size_t errlen);

/* Prints every setting, one per line: name, default, range or values ("-"
 * for text), and what it does, separated by tabs (statesrvd --settings). */
void sv_config_print_settings(FILE *f);

/* Prints every setting's value in cfg as `name = value` lines a config file
 * would hold (statesrvd --check-config). */
void sv_config_print_effective(const struct sv_config *cfg, FILE *f);

/* Cross-setting checks once everything is read. 0 or SV_EINVAL + err. */
int sv_config_validate(const struct sv_config *cfg, char *err, size_t errlen);

/* Parses "1024", "64K", "16MiB", "1G", ... into bytes. 0 or SV_EINVAL. */
int sv_parse_size(const char *s, uint64_t *out);
/* Parses a whole decimal number within [min, max]. 0 or SV_EINVAL. */
int sv_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
