# mk/fuzz.mk — included at the end of the Makefile: the sanitizer build and the fuzz targets.
#
# The sanitizer build ($(BUILD)/san): the CPU library, dath and the loader, list, files and
# eval checks compiled again with -fsanitize=address,undefined (-O1, no CUDA), by $(CC).
# `make test` runs them as test_loader_san, test_list_san, test_files_san,
# test_retrieval_san, and checks/test_san.sh runs the command-line checks (test_cli.sh,
# test_faults.sh) with $(BUILD)/san/dath. Any sanitizer report fails the check.
#
# The fuzz targets ($(BUILD)/fuzz, checks/fuzz/): one libFuzzer target per parser of
# untrusted bytes (list, safetensors, npy, cache, image), built by clang with
# -fsanitize=fuzzer,address,undefined over the parsers' sources only; the seed corpus is
# written by $(BUILD)/fuzz/make_seeds (built by $(CC) from the same sources). Without clang and libFuzzer
# (Debian: clang, libclang-rt-14-dev) nothing is built and checks/test_fuzz.sh skips.
#   make fuzz [FUZZ_TIME=60] [FUZZ_TARGETS="list npy"]   each target for FUZZ_TIME seconds,
#                                                         corpus kept in $(BUILD)/fuzz/corpus
#   make test                                            each for 10 s (checks/test_fuzz.sh)

# ---- the sanitizer build ---------------------------------------------------------------
SAN          := $(BUILD)/san
SAN_FLAGS    := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_CFLAGS   := $(filter-out $(OPT),$(BASE_CFLAGS)) -O1 -g $(SAN_FLAGS)
SAN_LIBS     := $(BASE_LDLIBS)
SAN_OBJ      := $(patsubst %.c,$(SAN)/%.o,$(filter-out host/main.c $(CUDA_C),$(ALL_C)))
SAN_CHECKS   := test_loader test_list test_files test_retrieval
TESTS        += $(SAN_CHECKS:%=$(SAN)/%_san)
TEST_TOOLS   += $(SAN)/dath

# stb_image_write's JPEG writer (dath mkdemo, test_loader's fixtures) shifts a signed int's
# bits past its sign (stb_image_write.h, stbiw__jpg_writeBits): not checked in those two files.
$(SAN)/host/demo.o $(SAN)/test_loader_san: SAN_CFLAGS += -fno-sanitize=shift-base

$(SAN)/%.o: %.c $(CONFIG_STAMP) mk/fuzz.mk
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -c $< -o $@

$(SAN)/libdath_san.a: $(SAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SAN)/dath: $(SAN)/host/main.o $(SAN)/libdath_san.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(SAN_LIBS)

$(SAN)/%_san: checks/%.c $(SAN)/libdath_san.a
	$(CC) $(SAN_CFLAGS) -o $@ $< $(SAN)/libdath_san.a $(SAN_LIBS)

# ---- the fuzz targets ------------------------------------------------------------------
FUZZ         := $(BUILD)/fuzz
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= list safetensors npy cache image
HAVE_FUZZ    := $(wildcard $(shell $(FUZZ_CC) -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-x86_64.a)
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
                -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_SRC     := loader/image.c loader/list.c loader/cache.c host/safetensors.c host/npy.c loader/atomic.c
FUZZ_OBJ     := $(FUZZ_SRC:%.c=$(FUZZ)/obj/%.o)
FUZZ_BINS    := $(patsubst %,$(FUZZ)/fuzz_%,list safetensors npy cache image)
.SECONDARY: $(FUZZ_OBJ)   # made through a pattern rule: kept, not deleted as intermediates
TEST_TOOLS   += $(FUZZ)/make_seeds $(if $(HAVE_FUZZ),$(FUZZ_BINS))

$(FUZZ)/obj/%.o: %.c $(CONFIG_STAMP) mk/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ)/fuzz_%: checks/fuzz/fuzz_%.c checks/fuzz/fuzz.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) -ljpeg -lm -lpthread

# the seed maker: the parsers' sources only (no library build, so `make fuzz` on a fresh
# clone does not wait for the CUDA build)
$(FUZZ)/make_seeds: checks/fuzz/make_seeds.c checks/jpeg_fixtures.h $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	  -o $@ $< $(FUZZ_SRC) -ljpeg -lm -lpthread

.PHONY: fuzz
fuzz: $(FUZZ)/make_seeds
ifeq ($(HAVE_FUZZ),)
	@echo "make fuzz: needs $(FUZZ_CC) with libFuzzer (Debian packages clang and libclang-rt-14-dev)" >&2; exit 1
else
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@checks/fuzz/run.sh $(FUZZ_TIME) $(FUZZ_TARGETS)
endif
