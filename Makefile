# statesrvd — one non-recursive Makefile. Everything built lands in build/.
#
#   make            build statesrvd, statectl, libstatesrv.{a,so}, statesrv-bench, examples
#   make test       build and run every Check suite (unit + integration)
#   make run        start statesrvd in the foreground with conf/statesrvd.conf, data in ./var
#   make deps       install missing Debian packages (as root; no-op when present)
#   make install    install under PREFIX (/usr/local), staged by DESTDIR; make uninstall
#   make test-install  install into temp dirs, build and run a pkg-config client, uninstall
#   make SANITIZE=address,undefined test    the same under ASan/UBSan (in build/sanitize)
#   make test-java  build statesrvd, then build and test the Java client and the Flink state
#                   backend (client/java, client/flink; Maven) against it
#   make bench-flink  the Flink benchmark (HashMap, RocksDB, statesrv; docs/benchmarks.md)
#   make test-powerloss  statesrvd on a FUSE filesystem that drops unsynced writes (tests/powerloss)
#   make test-s3    checkpoints on a real S3-compatible store (versitygw, built with go; tests/s3)
#   make bench-s3   S3 upload vs curl and a ranged restore from the store (docs/benchmarks.md)
#   make fuzz       build the libFuzzer targets (clang) in build/fuzz
#   make fuzz-smoke run each fuzz target FUZZ_SECONDS (default 60) over its seed corpus
#   make V=1        show full commands

PREFIX ?= /usr/local
CC ?= cc
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

ifdef SANITIZE
BUILD ?= build/sanitize
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS :=
endif
GEN := $(BUILD)/gen

# Debian packages the build and the tests need. `make deps` installs the
# missing ones with apt-get, and does nothing when all are present.
DEB_PKGS := build-essential pkg-config libuv1-dev liblmdb-dev libprotobuf-c-dev \
            protobuf-c-compiler check libinih-dev lmdb-utils libzstd-dev libxxhash-dev \
            libhttp-parser-dev curl man-db groff-base libcurl4-openssl-dev libssl-dev \
            libsystemd-dev libjansson-dev
# Only for the developer targets (format, test-valgrind, fuzz): `make deps-dev`.
DEB_PKGS_DEV := clang-format valgrind clang libclang-rt-14-dev llvm

PKG_MODULES := libuv lmdb libprotobuf-c inih libzstd libxxhash libcurl libcrypto libsystemd
PKG_CFLAGS = $(shell pkg-config --cflags $(PKG_MODULES) 2>/dev/null)
# http-parser (metrics endpoint) ships no pkg-config file.
PKG_LIBS = $(shell pkg-config --libs $(PKG_MODULES) 2>/dev/null || \
             echo -luv -llmdb -lprotobuf-c -linih -lzstd -lxxhash -lcurl -lcrypto -lsystemd) \
             -lhttp_parser
# What the checkpoint module needs beyond libstatesrv (statectl links it too).
CKPT_LIBS = $(shell pkg-config --libs libprotobuf-c libzstd libxxhash libcurl libcrypto 2>/dev/null || \
              echo -lprotobuf-c -lzstd -lxxhash -lcurl -lcrypto)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)
# statectl (import and every --json output) and statesrv-bench --json use jansson.
JSON_LIBS = $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
# What libstatesrv needs: protobuf-c, and LMDB for the local read path.
CLIENT_LIBS = $(shell pkg-config --libs libprotobuf-c lmdb 2>/dev/null || echo -lprotobuf-c -llmdb)

WARNFLAGS := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wformat=2 -Werror
OPTFLAGS ?= -O2 -g
ALL_CPPFLAGS = -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$(GEN) -Icommon -Iio -Iclient $(CPPFLAGS)
ALL_CFLAGS = $(WARNFLAGS) $(OPTFLAGS) $(SANFLAGS) -fPIC -MMD -MP $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

LIB_SOVERSION := 0
# Installed headers: the blocking API, the asynchronous one, its libuv
# adapter (header-only: the library itself does not link libuv), local reads.
LIB_HEADERS := statesrv.h statesrv_async.h statesrv_uv.h statesrv_local.h
LIB_VERSION := 0.1.0

# Checkpoints: the format (common/sv_ckpt_format.c, no I/O) and the file
# reader/writer with the filesystem helpers it uses (io/). They need zstd and
# xxhash and are linked into statesrvd, statectl and the tests, never into
# libstatesrv. io/ is its own directory because both statesrvd and statectl
# link it: it may do file I/O, which common/ does not, and it is not server
# code. (The generated checkpoint.pb-c code needs only protobuf-c, and the
# wire protocol embeds CheckpointManifest, so that does go into the library.)
CKPT_SRC := common/sv_ckpt_format.c $(wildcard io/*.c)
COMMON_SRC := $(filter-out $(CKPT_SRC),$(wildcard common/*.c))
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
CLIENT_LIB_SRC := client/statesrv.c client/statesrv_async.c client/statesrv_local.c

PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(PROTOS:proto/%.proto=$(GEN)/%.pb-c.c)
PROTO_H := $(PROTOS:proto/%.proto=$(GEN)/%.pb-c.h)
PROTO_OBJ := $(PROTOS:proto/%.proto=$(BUILD)/obj/gen/%.pb-c.o)

COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o) $(PROTO_OBJ)
CKPT_OBJ := $(CKPT_SRC:%.c=$(BUILD)/obj/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
CLIENT_LIB_OBJ := $(CLIENT_LIB_SRC:%.c=$(BUILD)/obj/%.o)

# tests/common/: helpers both suites use (crafted checkpoint files).
TEST_COMMON_SRC := $(wildcard tests/common/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c) $(TEST_COMMON_SRC)
INTEG_SRC := $(wildcard tests/integration/*.c) $(TEST_COMMON_SRC)

STATESRVD := $(BUILD)/statesrvd
STATECTL := $(BUILD)/statectl
BENCH_TOOL := $(BUILD)/statesrv-bench
EXAMPLE_SRC := $(wildcard client/examples/*.c)
EXAMPLES := $(EXAMPLE_SRC:client/examples/%.c=$(BUILD)/examples/%)
LIB_A := $(BUILD)/libstatesrv.a
LIB_SO := $(BUILD)/libstatesrv.so.$(LIB_VERSION)
UNIT_BIN := $(BUILD)/tests/check_unit
INTEG_BIN := $(BUILD)/tests/check_integration

DEPS_STAMP := build/.deps-ok
DEPS_DEV_STAMP := build/.deps-dev-ok

.PHONY: all deps deps-dev test test-unit test-integration test-valgrind run clean format format-check \
        bench bench-operator bench-flink bench-snapshot fuzz fuzz-smoke fuzz-corpus install \
        uninstall test-install test-docs test-java deps-java test-powerloss test-s3 bench-s3
.DEFAULT_GOAL := all

all: $(STATESRVD) $(STATECTL) $(LIB_A) $(LIB_SO) $(BENCH_TOOL) $(EXAMPLES)

# --- dependencies --------------------------------------------------------
deps: $(DEPS_STAMP)

# Installs the missing packages of $(1) with apt-get (as root), or says how.
define install_pkgs
	$(Q)missing=""; \
	if command -v dpkg-query >/dev/null 2>&1; then \
	  for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	  done; \
	else \
	  echo "deps: not a Debian system; make sure these are installed: $(1)"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "deps: missing Debian packages:$$missing"; \
	    echo "deps: run 'sudo make $(2)' or: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing; } || exit 1; \
	fi
	$(Q)mkdir -p $(@D) && touch $@
endef

$(DEPS_STAMP): Makefile
	$(call install_pkgs,$(DEB_PKGS),deps)

deps-dev: $(DEPS_DEV_STAMP)

$(DEPS_DEV_STAMP): Makefile | $(DEPS_STAMP)
	$(call install_pkgs,$(DEB_PKGS_DEV),deps-dev)

# --- generated code ------------------------------------------------------
# A pattern rule with two targets: one protoc-c run makes both.
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto | $(DEPS_STAMP)
	@mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --proto_path=proto --c_out=$(GEN) $<

# --- objects -------------------------------------------------------------
$(BUILD)/obj/%.o: %.c $(PROTO_H) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# Keep the generated code and the examples' objects: make would otherwise
# delete them as intermediates, and the next make would rebuild everything.
.SECONDARY: $(PROTO_C) $(PROTO_H) $(EXAMPLE_SRC:%.c=$(BUILD)/obj/%.o)

# Generated code is not ours to keep warning-clean beyond the basics.
$(BUILD)/obj/gen/%.pb-c.o: $(GEN)/%.pb-c.c $(PROTO_H) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CPPFLAGS) -std=c11 -Wall -Werror $(OPTFLAGS) $(SANFLAGS) -fPIC $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

# The client library exports only statesrv_* (visibility attributes in statesrv.h);
# its internal sv_client_* symbols (statesrv_core.h) stay hidden.
$(CLIENT_LIB_OBJ): ALL_CFLAGS += -fvisibility=hidden -DSTATESRV_BUILDING

# --- binaries and libraries ----------------------------------------------
$(STATESRVD): $(BUILD)/obj/server/main.o $(SERVER_OBJ) $(CKPT_OBJ) $(COMMON_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

$(LIB_A): $(CLIENT_LIB_OBJ) $(COMMON_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(CLIENT_LIB_OBJ) $(COMMON_OBJ) client/statesrv.map
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libstatesrv.so.$(LIB_SOVERSION) \
	    -Wl,--version-script=client/statesrv.map -o $@ $(CLIENT_LIB_OBJ) $(COMMON_OBJ) \
	    $(CLIENT_LIBS)
	$(Q)ln -sf libstatesrv.so.$(LIB_VERSION) $(BUILD)/libstatesrv.so.$(LIB_SOVERSION)
	$(Q)ln -sf libstatesrv.so.$(LIB_SOVERSION) $(BUILD)/libstatesrv.so

$(STATECTL): $(BUILD)/obj/client/statectl.o $(CKPT_OBJ) $(LIB_A)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CKPT_LIBS) $(CLIENT_LIBS) $(JSON_LIBS) -pthread

# The load generator: event-driven (libuv) on the wire protocol itself.
$(BENCH_TOOL): $(BUILD)/obj/client/statesrv_bench.o $(LIB_A)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(JSON_LIBS) -lm -lpthread

# Example operators: programs written against libstatesrv alone.
$(BUILD)/examples/%: $(BUILD)/obj/client/examples/%.o $(LIB_A)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CLIENT_LIBS)

# --- tests ---------------------------------------------------------------
$(UNIT_BIN): $(UNIT_SRC:%.c=$(BUILD)/obj/%.o) $(SERVER_OBJ) $(CKPT_OBJ) $(COMMON_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lpthread

$(INTEG_BIN): $(INTEG_SRC:%.c=$(BUILD)/obj/%.o) $(CKPT_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lpthread

$(BUILD)/obj/tests/%.o: ALL_CPPFLAGS += -Iserver -Itests -Itests/common

# `all` too: after `make test` every artifact the README names exists.
test: all test-unit test-integration test-docs test-install

# Man pages render without warnings, and the docs name every setting, flag
# and API function the code has (tests/tools/check-man.sh).
test-docs: all
	$(Q)SV_BUILD=$(BUILD) tests/tools/check-man.sh

test-unit: $(UNIT_BIN)
	$(Q)$(UNIT_BIN)

# SV_SANITIZE tells the tests that measure memory or latency that the
# server runs under ASan/UBSan (whose allocator keeps freed memory).
test-integration: $(INTEG_BIN) $(STATESRVD) $(STATECTL) $(EXAMPLES)
	$(Q)SV_SANITIZE=$(SANITIZE) STATESRVD=$(abspath $(STATESRVD)) STATECTL=$(abspath $(STATECTL)) \
	    EXAMPLES_DIR=$(abspath $(BUILD)/examples) $(INTEG_BIN)

# The integration suite with statesrvd under valgrind memcheck (slow: minutes).
test-valgrind: $(INTEG_BIN) $(STATESRVD) $(STATECTL) $(EXAMPLES) | $(DEPS_DEV_STAMP)
	$(Q)SV_TEST_SLOW=1 STATESRVD=$(abspath tests/tools/valgrind-statesrvd) STATESRVD_REAL=$(abspath $(STATESRVD)) \
	    STATECTL=$(abspath $(STATECTL)) EXAMPLES_DIR=$(abspath $(BUILD)/examples) $(INTEG_BIN)

# --- object storage (never part of `make test`) ---------------------------
# Checkpoints on a real S3-compatible store: versitygw (Apache-2.0), built
# from its Go module into build/tools (needs `go` on PATH, 1.22 or newer,
# and the Go module proxy), started by the
# tests on 127.0.0.1 with a temporary directory (tests/s3/objstore.c).
VERSITYGW_VERSION := v1.8.0
VERSITYGW := build/tools/versitygw
S3_TEST_SRC := $(wildcard tests/s3/*.c) tests/integration/harness.c
S3_TEST_BIN := $(BUILD)/tests/check_s3

# Go's module and build caches go to the user's cache, so a fresh clone
# (CI) does not fetch and compile everything again.
GO_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/statesrvd-go

$(VERSITYGW):
	@mkdir -p build/tools
	@echo "  GO      versitygw $(VERSITYGW_VERSION)"
	$(Q)command -v go >/dev/null 2>&1 || { echo "test-s3: needs go (1.22 or newer) on PATH"; exit 1; }
	$(Q)GOBIN=$(abspath build/tools) GOPATH=$(GO_CACHE_DIR) GOMODCACHE=$(GO_CACHE_DIR)/mod \
	    GOCACHE=$(GO_CACHE_DIR)/build GOFLAGS=-modcacherw \
	    go install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(BUILD)/obj/tests/s3/%.o: ALL_CPPFLAGS += -Itests/integration

$(S3_TEST_BIN): $(S3_TEST_SRC:%.c=$(BUILD)/obj/%.o) $(CKPT_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lpthread

test-s3: $(S3_TEST_BIN) $(STATESRVD) $(STATECTL) $(VERSITYGW)
	$(Q)VERSITYGW=$(abspath $(VERSITYGW)) STATESRVD=$(abspath $(STATESRVD)) \
	    STATECTL=$(abspath $(STATECTL)) $(S3_TEST_BIN)

# Issue 14's numbers (docs/benchmarks.md): a checkpoint of ENTRIES (10 M) x
# 100 B uploaded through statesrvd and by curl --aws-sigv4 to versitygw on
# 127.0.0.1, interleaved (REPS pairs), and a ranged restore of half its key
# groups from the store (tests/s3/bench.sh; CONCURRENCY, PART_SIZE too).
bench-s3: $(STATESRVD) $(STATECTL) $(BENCH_TOOL) $(VERSITYGW)
	$(Q)VERSITYGW=$(abspath $(VERSITYGW)) STATESRVD=$(abspath $(STATESRVD)) \
	    STATECTL=$(abspath $(STATECTL)) STATESRV_BENCH=$(abspath $(BENCH_TOOL)) \
	    tests/s3/bench.sh

# --- Java client (client/; never part of `make test`) ----------------------
# A Maven build: the parent client/pom.xml pins every version; Maven fetches
# protoc, protobuf-java, JUnit, AssertJ and google-java-format from Maven
# Central into ~/.m2. The JDK and Maven come from Debian (`make deps-java`).
# Outputs land in build/java/<artifactId>. `verify` compiles (protobuf code
# generated from proto/), runs the JUnit suites against $(STATESRVD) (the
# client's, then the Flink backend's: Flink's StateBackendTestBase and
# MiniCluster jobs; Flink 1.20 comes from Maven Central too) and
# checks the format (fix with `mvn -f client/pom.xml spotless:apply`).
DEB_PKGS_JAVA := openjdk-17-jdk-headless maven
DEPS_JAVA_STAMP := build/.deps-java-ok
MVN ?= mvn
MVN_FLAGS ?= -B -q
JAVA_REPORTS := build/java/statesrv-client/surefire-reports build/java/statesrv-flink/surefire-reports

$(DEPS_JAVA_STAMP): Makefile | $(DEPS_STAMP)
	$(call install_pkgs,$(DEB_PKGS_JAVA),deps-java)

deps-java: $(DEPS_JAVA_STAMP)

# Maven is quiet on success: the last line sums the Surefire reports.
test-java: $(STATESRVD) | $(DEPS_JAVA_STAMP)
	$(Q)rm -rf $(JAVA_REPORTS)
	$(Q)rc=0; $(MVN) $(MVN_FLAGS) -f client/pom.xml verify -Dstatesrvd=$(abspath $(STATESRVD)) || rc=$$?; \
	cat $(addsuffix /TEST-*.xml,$(JAVA_REPORTS)) 2>/dev/null | grep -o '<testsuite [^>]*' | \
	  awk '{ for (i = 1; i <= NF; i++) if (split($$i, kv, "=") == 2) { gsub(/"/, "", kv[2]); n[kv[1]] += kv[2] } } \
	       END { f = n["failures"] + n["errors"]; \
	             printf "java: %d passed, %d failed, %d skipped\n", n["tests"] - f - n["skipped"], f, n["skipped"] }'; \
	exit $$rc

# The Flink benchmark of docs/benchmarks.md (client/flink FlinkBench: HashMap, RocksDB and
# statesrv side by side on a MiniCluster); not part of any test target. Sizes:
#   make bench-flink BENCH_FLINK="-Dbench.records=300000 -Dbench.keys=10000 -Dbench.runs=3"
BENCH_FLINK ?=
bench-flink: $(STATESRVD) | $(DEPS_JAVA_STAMP)
	$(Q)$(MVN) $(MVN_FLAGS) -T 1 -f client/pom.xml verify -Dstatesrvd=$(abspath $(STATESRVD)) \
	  -Dtest=FlinkBench -Dsurefire.failIfNoSpecifiedTests=false -Dspotless.check.skip=true \
	  -Dmaven.test.redirectTestOutputToFile=true $(BENCH_FLINK)
	$(Q)grep -E '^(run |Flink benchmark|\|)' \
	  build/java/statesrv-flink/surefire-reports/io.statesrv.flink.FlinkBench-output.txt

# --- power loss -----------------------------------------------------------
# statesrvd with its data_dir on plfs, a FUSE pass-through that drops every
# write not synced when told to "crash" (tests/powerloss/plfs.c; what it
# models: docs/security.md, "Power loss"). Needs libfuse3 and fusermount3
# from Debian and a mountable /dev/fuse; where no FUSE mount can be made the
# run prints "skipped: <reason>" and succeeds.
DEB_PKGS_POWERLOSS := libfuse3-dev fuse3
DEPS_POWERLOSS_STAMP := build/.deps-powerloss-ok
$(DEPS_POWERLOSS_STAMP): Makefile | $(DEPS_STAMP)
	$(call install_pkgs,$(DEB_PKGS_POWERLOSS),test-powerloss)

PLFS := $(BUILD)/tests/plfs
POWERLOSS_BIN := $(BUILD)/tests/check_powerloss
POWERLOSS_SRC := $(filter-out tests/powerloss/plfs.c,$(wildcard tests/powerloss/*.c))
FUSE_CFLAGS = $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS = $(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3)

# libfuse wants FUSE_USE_VERSION and _GNU_SOURCE (set in the file), not our
# feature macros.
$(PLFS): tests/powerloss/plfs.c | $(DEPS_POWERLOSS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(WARNFLAGS) $(OPTFLAGS) $(FUSE_CFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) $(FUSE_LIBS)

$(POWERLOSS_BIN): $(POWERLOSS_SRC:%.c=$(BUILD)/obj/%.o) $(LIB_A)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CLIENT_LIBS) $(CHECK_LIBS) -lpthread

test-powerloss: $(POWERLOSS_BIN) $(PLFS) $(STATESRVD) | $(DEPS_POWERLOSS_STAMP)
	$(Q)PLFS=$(abspath $(PLFS)) STATESRVD=$(abspath $(STATESRVD)) $(POWERLOSS_BIN)

# --- benchmarks (never part of `make test`) -------------------------------
$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB_A)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CLIENT_LIBS)

# statesrvd and Redis side by side (tests/bench/bench.sh; QUICK=1 for a
# short run, PARTS=N for some of the four parts). Redis comes from Debian's redis-server and redis-tools;
# embedded RocksDB and hiredis (make bench-operator) from librocksdb-dev and libhiredis-dev.
DEB_PKGS_BENCH := redis-server redis-tools librocksdb-dev libhiredis-dev
DEPS_BENCH_STAMP := build/.deps-bench-ok
$(DEPS_BENCH_STAMP): Makefile | $(DEPS_STAMP)
	$(call install_pkgs,$(DEB_PKGS_BENCH),bench)

# The limit rows' server (issue 20): the protocol with no store, built from
# the project's codec (tests/bench/limit_server.c); bench.sh runs it.
LIMIT_BIN := $(BUILD)/bench/limit_server
$(LIMIT_BIN): CLIENT_LIBS += -luv

bench: all $(BENCH_TOOL) $(LIMIT_BIN) | $(DEPS_BENCH_STAMP)
	$(Q)QUICK=$(QUICK) PARTS="$(or $(PARTS),1 2 3 4)" STATESRVD=$(abspath $(STATESRVD)) STATECTL=$(abspath $(STATECTL)) \
	    LIMIT_SERVER=$(abspath $(LIMIT_BIN)) \
	    STATESRV_BENCH=$(abspath $(BENCH_TOOL)) tests/bench/bench.sh

# One operator thread: embedded RocksDB against libstatesrv blocking, async
# and local reads on a statesrvd it starts, and Redis through hiredis
# (tests/bench/operator.c; QUICK=1
# for a smoke run, OPERATOR_ARGS for more). Table in build/bench/operator-latest.md.
OPERATOR_BIN := $(BUILD)/bench/operator
$(OPERATOR_BIN): CLIENT_LIBS += -lrocksdb -lhiredis
$(BUILD)/obj/tests/bench/operator.o: | $(DEPS_BENCH_STAMP)

bench-operator: $(OPERATOR_BIN) $(STATESRVD) | $(DEPS_BENCH_STAMP)
	@mkdir -p build/bench
	$(Q)$(OPERATOR_BIN) --statesrvd $(abspath $(STATESRVD)) $(if $(filter 1,$(QUICK)),--quick) \
	    $(OPERATOR_ARGS) | tee build/bench/operator-latest.md

# Write throughput before, during and after a snapshot (docs/benchmarks.md).
bench-snapshot:
	tests/bench/snapshot_impact.sh $(BENCH_ARGS)

# --- fuzzing (clang + libFuzzer; never part of `make test`) ----------------
# Every target links all of common/ and server/ (minus main.c) and the
# generated protobuf code, compiled by clang with the fuzzer and sanitizer
# instrumentation into its own object tree. See tests/fuzz/README.md.
FUZZ_CC ?= clang
FUZZ_BUILD := build/fuzz
FUZZ_SANFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer
FUZZ_OPTFLAGS ?= -O1 -g
FUZZ_TARGETS := frame request ckpt
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(COMMON_SRC) $(CKPT_SRC) $(SERVER_SRC)) \
                $(PROTOS:proto/%.proto=$(FUZZ_BUILD)/obj/gen/%.pb-c.o)
FUZZ_CFLAGS = $(WARNFLAGS) $(FUZZ_OPTFLAGS) $(FUZZ_SANFLAGS) -MMD -MP $(PKG_CFLAGS) $(CFLAGS)
FUZZ_CPPFLAGS = $(ALL_CPPFLAGS) -Iserver
FUZZ_SECONDS ?= 60
# Per target: the largest input to try (-max_len), in bytes.
FUZZ_MAXLEN_frame := 4096
FUZZ_MAXLEN_request := 8192
FUZZ_MAXLEN_ckpt := 16384
FUZZ_SYMBOLIZER := $(firstword $(wildcard /usr/bin/llvm-symbolizer /usr/lib/llvm-14/bin/llvm-symbolizer))

fuzz: $(FUZZ_BINS)

# The targets' own objects are only reached through the pattern rules below:
# keep make from deleting them as intermediates.
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o) \
            $(FUZZ_BUILD)/obj/tests/fuzz/gen_corpus.o

$(FUZZ_BUILD)/obj/%.o: %.c $(PROTO_H) | $(DEPS_DEV_STAMP)
	@mkdir -p $(@D)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/obj/gen/%.pb-c.o: $(GEN)/%.pb-c.c $(PROTO_H) | $(DEPS_DEV_STAMP)
	@mkdir -p $(@D)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CPPFLAGS) -std=c11 -Wall -Werror $(FUZZ_OPTFLAGS) $(FUZZ_SANFLAGS) \
	    $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	@echo "  LD      $@"
	$(Q)$(FUZZ_CC) $(FUZZ_SANFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

# Regenerates the seed corpora in tests/fuzz/corpus/ (committed; rerun after a
# protocol or checkpoint-format change). The generator has its own main().
$(FUZZ_BUILD)/gen_corpus: $(FUZZ_BUILD)/obj/tests/fuzz/gen_corpus.o $(FUZZ_LIB_OBJ)
	@echo "  LD      $@"
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer-no-link,address,undefined $(LDFLAGS) -o $@ $^ \
	    $(PKG_LIBS) -lpthread

# Inputs named regress-* reproduce bugs the fuzzers found: they are kept.
fuzz-corpus: $(FUZZ_BUILD)/gen_corpus
	$(Q)if [ -d tests/fuzz/corpus ]; then \
	  find tests/fuzz/corpus -type f ! -name 'regress-*' -delete; fi
	$(Q)$(FUZZ_BUILD)/gen_corpus tests/fuzz/corpus

# Each target fuzzes a scratch copy of its corpus (new inputs never dirty the
# tree); a crash, leak, timeout or OOM fails the run and leaves the input in
# build/fuzz/artifacts/.
fuzz-smoke: $(FUZZ_BINS)
	$(Q)mkdir -p $(FUZZ_BUILD)/artifacts
	$(Q)set -e; for t in $(FUZZ_TARGETS); do \
	  case $$t in frame) ml=$(FUZZ_MAXLEN_frame);; request) ml=$(FUZZ_MAXLEN_request);; \
	    ckpt) ml=$(FUZZ_MAXLEN_ckpt);; esac; \
	  scratch=$(FUZZ_BUILD)/run/$$t; rm -rf $$scratch; mkdir -p $$scratch; \
	  cp tests/fuzz/corpus/fuzz_$$t/* $$scratch/; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s, -max_len=$$ml"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(if $(FUZZ_SYMBOLIZER),ASAN_SYMBOLIZER_PATH=$(FUZZ_SYMBOLIZER)) \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$ml -timeout=10 \
	    -rss_limit_mb=2560 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/fuzz_$$t- $$scratch \
	    > $(FUZZ_BUILD)/run/fuzz_$$t.log 2>&1 || \
	    { tail -n 60 $(FUZZ_BUILD)/run/fuzz_$$t.log; echo "fuzz_$$t FAILED (log: $(FUZZ_BUILD)/run/fuzz_$$t.log)"; exit 1; }; \
	  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
	    $(FUZZ_BUILD)/run/fuzz_$$t.log | tr '\n' ' '; echo; \
	done

# --- install -------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/staging/root] [BINDIR=...] ...
# Every directory below may be set on the command line; DESTDIR is prepended
# to each (for packaging) and is never written into an installed file.
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DATAROOTDIR ?= $(PREFIX)/share
MANDIR ?= $(DATAROOTDIR)/man
DOCDIR ?= $(DATAROOTDIR)/doc/statesrvd
BASHCOMPDIR ?= $(DATAROOTDIR)/bash-completion/completions
# /etc for PREFIX /usr and /usr/local (where the unit and the docs look for
# /etc/statesrvd/statesrvd.conf), PREFIX/etc for any other prefix.
SYSCONFDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),/etc,$(PREFIX)/etc)
# systemd reads units from /usr/local/lib/systemd/system and
# /usr/lib/systemd/system; with another PREFIX, set SYSTEMDUNITDIR=/etc/systemd/system.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install
# Run after installing or removing the library, when DESTDIR is empty and we are root.
LDCONFIG ?= ldconfig

MAN_PAGES := docs/man/statesrvd.8 docs/man/statectl.1 docs/man/statesrvd.conf.5 docs/man/libstatesrv.3
DOC_FILES := $(wildcard docs/*.md)
INSTALLED_CONF = $(DESTDIR)$(SYSCONFDIR)/statesrvd/statesrvd.conf
INSTALLED_UNIT = $(DESTDIR)$(SYSTEMDUNITDIR)/statesrvd@.service

# The sample config goes to $(SYSCONFDIR)/statesrvd/ only when no config is
# there (an existing one is never overwritten); its pristine copy is always
# in $(DOCDIR)/examples/. statesrv.pc and the unit are written straight into
# place from their templates (nothing is built in build/ as root): the unit's
# ExecStart, config and documentation paths follow SBINDIR, SYSCONFDIR and DOCDIR.
install: all
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"
	$(Q)$(INSTALL) -D -m 0755 $(STATESRVD) "$(DESTDIR)$(SBINDIR)/statesrvd"
	$(Q)$(INSTALL) -D -m 0755 $(STATECTL) "$(DESTDIR)$(BINDIR)/statectl"
	$(Q)$(INSTALL) -D -m 0755 $(BENCH_TOOL) "$(DESTDIR)$(BINDIR)/statesrv-bench"
	$(Q)$(INSTALL) -D -m 0644 $(LIB_SO) "$(DESTDIR)$(LIBDIR)/libstatesrv.so.$(LIB_VERSION)"
	$(Q)ln -sf libstatesrv.so.$(LIB_VERSION) "$(DESTDIR)$(LIBDIR)/libstatesrv.so.$(LIB_SOVERSION)"
	$(Q)ln -sf libstatesrv.so.$(LIB_SOVERSION) "$(DESTDIR)$(LIBDIR)/libstatesrv.so"
	$(Q)$(INSTALL) -D -m 0644 $(LIB_A) "$(DESTDIR)$(LIBDIR)/libstatesrv.a"
	$(Q)for h in $(LIB_HEADERS); do \
	  $(INSTALL) -D -m 0644 client/$$h "$(DESTDIR)$(INCLUDEDIR)/$$h" || exit 1; done
	$(Q)$(INSTALL) -d -m 0755 "$(DESTDIR)$(PKGCONFIGDIR)"
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g' \
	    -e 's|@VERSION@|$(LIB_VERSION)|g' client/statesrv.pc.in > "$(DESTDIR)$(PKGCONFIGDIR)/statesrv.pc"
	$(Q)chmod 0644 "$(DESTDIR)$(PKGCONFIGDIR)/statesrv.pc"
	$(Q)for p in $(MAN_PAGES); do \
	  $(INSTALL) -D -m 0644 $$p "$(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/}" || exit 1; done
	$(Q)for f in $(DOC_FILES); do \
	  $(INSTALL) -D -m 0644 $$f "$(DESTDIR)$(DOCDIR)/$${f##*/}" || exit 1; done
	$(Q)$(INSTALL) -D -m 0644 conf/statesrvd.conf "$(DESTDIR)$(DOCDIR)/examples/statesrvd.conf"
	$(Q)$(INSTALL) -D -m 0644 conf/statectl.bash "$(DESTDIR)$(BASHCOMPDIR)/statectl"
	$(Q)if [ ! -e "$(INSTALLED_CONF)" ]; then \
	  $(INSTALL) -D -m 0644 conf/statesrvd.conf "$(INSTALLED_CONF)"; \
	elif ! cmp -s conf/statesrvd.conf "$(INSTALLED_CONF)"; then \
	  echo "install: kept $(INSTALLED_CONF) (yours); the new sample is $(DESTDIR)$(DOCDIR)/examples/statesrvd.conf"; \
	fi
	$(Q)$(INSTALL) -d -m 0755 "$(DESTDIR)$(SYSTEMDUNITDIR)"
	$(Q)sed -e 's|^ExecStart=[^ ]*/statesrvd |ExecStart=$(SBINDIR)/statesrvd |' \
	    -e 's|/etc/statesrvd/|$(SYSCONFDIR)/statesrvd/|g' \
	    -e 's|file://[^ ]*/share/doc/statesrvd/|file://$(DOCDIR)/|g' \
	    'conf/statesrvd@.service' > "$(INSTALLED_UNIT)"
	$(Q)chmod 0644 "$(INSTALLED_UNIT)"
	$(Q)grep -q '^ExecStart=$(SBINDIR)/statesrvd ' "$(INSTALLED_UNIT)" || \
	  { echo "install: could not set ExecStart in $(INSTALLED_UNIT)"; rm -f "$(INSTALLED_UNIT)"; exit 1; }
	$(Q)if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG); fi

# Removes what install put there. The config in $(SYSCONFDIR)/statesrvd/ only
# goes when it is still the sample of this tree; a changed one stays (said).
# The statesrvd-only directories are removed when empty; shared ones
# (bin, lib, man/manN, ...) are left alone.
uninstall:
	@echo "  UNINSTALL $(DESTDIR)$(PREFIX)"
	$(Q)rm -f "$(DESTDIR)$(SBINDIR)/statesrvd" "$(DESTDIR)$(BINDIR)/statectl" \
	    "$(DESTDIR)$(BINDIR)/statesrv-bench" \
	    "$(DESTDIR)$(LIBDIR)/libstatesrv.so.$(LIB_VERSION)" \
	    "$(DESTDIR)$(LIBDIR)/libstatesrv.so.$(LIB_SOVERSION)" "$(DESTDIR)$(LIBDIR)/libstatesrv.so" \
	    "$(DESTDIR)$(LIBDIR)/libstatesrv.a" $(LIB_HEADERS:%="$(DESTDIR)$(INCLUDEDIR)/%") \
	    "$(DESTDIR)$(PKGCONFIGDIR)/statesrv.pc" "$(INSTALLED_UNIT)" \
	    "$(DESTDIR)$(DOCDIR)/examples/statesrvd.conf" "$(DESTDIR)$(BASHCOMPDIR)/statectl"
	$(Q)for p in $(MAN_PAGES); do rm -f "$(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/}"; done
	$(Q)for f in $(DOC_FILES); do rm -f "$(DESTDIR)$(DOCDIR)/$${f##*/}"; done
	$(Q)if [ -e "$(INSTALLED_CONF)" ]; then \
	  if cmp -s conf/statesrvd.conf "$(INSTALLED_CONF)"; then rm -f "$(INSTALLED_CONF)"; \
	  else echo "uninstall: kept $(INSTALLED_CONF) (changed from the sample)"; fi; \
	fi
	$(Q)for d in "$(DESTDIR)$(SYSCONFDIR)/statesrvd" "$(DESTDIR)$(DOCDIR)/examples" "$(DESTDIR)$(DOCDIR)"; do \
	  if [ -d "$$d" ]; then rmdir "$$d" 2>/dev/null || true; fi; done
	$(Q)if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG); fi

# Installs into temp dirs (DESTDIR, then PREFIX), builds and runs a program
# outside the tree against the installed library with pkg-config, checks the
# man pages and that uninstall leaves nothing (tests/tools/check-install.sh).
test-install: all
	$(Q)SV_BUILD=$(BUILD) SV_SANITIZE=$(SANITIZE) SV_APP_FLAGS="$(SANFLAGS)" \
	    tests/tools/check-install.sh

# --- running -------------------------------------------------------------
# Everything the README's tour and the docs use is built first.
run: all
	@mkdir -p var/data var/checkpoints
	$(STATESRVD) --config conf/statesrvd.conf --data-dir var/data \
	    --checkpoint-dir var/checkpoints --unix var/statesrvd.sock

clean:
	rm -rf build

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format: $(DEPS_DEV_STAMP)
	clang-format -i $(FORMAT_FILES)
format-check: $(DEPS_DEV_STAMP)
	clang-format --dry-run --Werror $(FORMAT_FILES)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
