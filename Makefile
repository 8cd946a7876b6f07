# dath — one Makefile. `make` builds ./dath, `make test` builds and runs every check,
# `make demo` trains and evaluates on the embedded demo data.
#   CUDA=0        CPU-only binary (default: CUDA when nvcc is found)
#   ARCH="80 90"  narrow the CUDA architectures (default: chosen from nvcc's version)
#   DEBUG=1       -O0 -g, and a device synchronise after every CUDA launch
#   PYTHON=...    the Python that has torch/numpy (default: Debian's /usr/bin/python3)

CC      ?= cc
PYTHON  ?= /usr/bin/python3
BUILD   := build
OPT     := $(if $(DEBUG),-O0 -g -DDATH_DEBUG=1,-O3 -march=x86-64-v2)
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers $(OPT) -fopenmp -MMD -MP
LDLIBS  += -lopenblas -ljpeg -lm -lpthread -fopenmp

# ---- what is there ------------------------------------------------------------
NVCC      ?= $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
ifeq ($(CUDA),0)
  HAVE_CUDA :=
else ifneq ($(NVCC),)
  HAVE_CUDA := 1
endif
HAVE_NCCL := $(if $(HAVE_CUDA),$(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
HAVE_BLAS := $(wildcard /usr/include/cblas.h /usr/include/x86_64-linux-gnu/cblas.h)
HAVE_STB  := $(wildcard /usr/include/stb/stb_image.h)
HAVE_JPEG := $(wildcard /usr/include/jpeglib.h)

ifneq ($(HAVE_CUDA),)
  NVCC_VER  := $(shell $(NVCC) --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1.\2/p')
  NVCC_MAJ  := $(firstword $(subst ., ,$(NVCC_VER)))
  ifeq ($(shell [ "$(NVCC_MAJ)" -ge 13 ] && echo new),new)
    ARCH ?= 75 80 86 89 90
  else
    ARCH ?= 61 70 75 80 86 89 90
  endif
  # machine code for every architecture, plus PTX of each so newer GPUs JIT it
  GENCODE  := $(foreach a,$(ARCH),-gencode arch=compute_$(a),code=[sm_$(a),compute_$(a)])
  NVFLAGS  += -std=c++17 $(if $(DEBUG),-O0 -g -lineinfo -DDATH_DEBUG=1,-O3 -lineinfo) \
              -DDATH_CUDA $(GENCODE) -Xcompiler -fopenmp,-Wall -MMD -MP
  CFLAGS   += -DDATH_CUDA -I$(CUDA_HOME)/include
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
  ifneq ($(HAVE_NCCL),)
    CFLAGS  += -DDATH_NCCL
    NVFLAGS += -DDATH_NCCL
    LDLIBS  += -lnccl
  endif
endif

# A build directory made with other settings (CUDA=0 then CUDA, DEBUG, ARCH) is rebuilt:
# every object depends on a stamp that changes only when the settings do.
CONFIG_STR   := cuda=$(HAVE_CUDA) arch=$(ARCH) nccl=$(if $(HAVE_NCCL),1) debug=$(DEBUG)
CONFIG_STAMP := $(BUILD)/.config
$(shell mkdir -p $(BUILD); [ "$$(cat $(CONFIG_STAMP) 2>/dev/null)" = "$(CONFIG_STR)" ] || echo "$(CONFIG_STR)" > $(CONFIG_STAMP))

# ---- sources --------------------------------------------------------------------
# Every .c in kernels/, host/, loader/ is part of the library; *_cuda.c and *.cu only
# when CUDA is built. host/main.c is the binary's entry point.
ALL_C    := $(wildcard kernels/*.c host/*.c loader/*.c)
CUDA_C   := $(filter %_cuda.c,$(ALL_C))
LIB_C    := $(filter-out host/main.c $(CUDA_C),$(ALL_C)) $(if $(HAVE_CUDA),$(CUDA_C))
LIB_CU   := $(if $(HAVE_CUDA),$(wildcard kernels/*.cu host/*.cu))
LIB_OBJ  := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CU:%.cu=$(BUILD)/%.cu.o)
TESTS    := $(patsubst checks/%.c,$(BUILD)/checks/%,$(wildcard checks/test_*.c))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

.PHONY: all deps info test demo clean check-sm61
all: deps info dath

deps:
	@mk/deps.sh build

info:
	@echo "dath build: cc=$(CC)  openblas=$(if $(HAVE_BLAS),yes,NO)  stb_image=$(if $(HAVE_STB),yes,NO)"
	@echo "dath build: nvcc=$(if $(HAVE_CUDA),$(NVCC) (CUDA $(NVCC_VER), sm_$(subst $() ,/,$(ARCH))),$(if $(filter 0,$(CUDA)),disabled by CUDA=0,not found: CPU-only))  cublas=$(if $(HAVE_CUDA),yes,no)  nccl=$(if $(HAVE_NCCL),yes,no)"

dath: $(BUILD)/host/main.o $(BUILD)/libdath.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/libdath.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/checks/%: checks/%.c $(BUILD)/libdath.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdath.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libdath.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdath.a $(LDLIBS)

test: all
	@mk/deps.sh test
	@$(MAKE) --no-print-directory $(TESTS) $(BENCHES) $(TEST_TOOLS)
	@PYTHON=$(PYTHON) checks/run.sh $(TESTS)

demo: all
	@mk/deps.sh test
	@PYTHON=$(PYTHON) checks/demo.sh

clean:
	rm -rf $(BUILD) dath

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The GTX 1080 Ti build: every .cu file compiled for sm_61 with Debian's CUDA 11.8.
check-sm61:
	@mk/check-sm61.sh

# ---- the CUDA kernels on the CPU (checks/emu; see checks/emu/README.md) ------------------
# checks/test_cuda_kernels.c and checks/test_cuda_hamming.c, unchanged, built against a CPU
# emulation of CUDA: every kernels/*.cu rewritten by checks/emu/cu2cpp.py into
# $(BUILD)/emu/kernels/*.cpp and compiled by $(CXX) with the emulator's cuda_runtime.h and
# cublas_v2.h, the whole library (host/backend_cuda.c too) compiled again with -DDATH_CUDA
# against them. No CUDA toolkit is needed. `make test` runs them as test_cuda_kernels_emu
# and test_cuda_hamming_emu: the real kernel code, on the CPU; not a GPU result. Kernels
# get FMA contraction as nvcc does (-mfma where the CPU has FMA); the emulator does not.
EMU          := $(BUILD)/emu
EMU_CFLAGS   := $(filter-out -DDATH_CUDA -DDATH_NCCL -I$(CUDA_HOME)/include,$(CFLAGS)) -DDATH_CUDA -Ichecks/emu
EMU_CXXFLAGS := -std=c++17 $(OPT) -Wall -Wextra -Wno-unused-parameter -fno-strict-aliasing -ffp-contract=fast \
                $(if $(shell grep -qw fma /proc/cpuinfo 2>/dev/null && echo y),-mfma) -DDATH_CUDA -Ichecks/emu -Ikernels -MMD -MP
EMU_LDLIBS   := $(filter-out -L% -Wl% -lcublasLt -lcublas -lcudart -lnccl,$(LDLIBS)) -lstdc++
EMU_OBJ      := $(patsubst %.c,$(EMU)/%.o,$(filter-out host/main.c,$(ALL_C))) $(EMU)/emu.o \
                $(patsubst kernels/%.cu,$(EMU)/kernels/%.cu.o,$(wildcard kernels/*.cu))
TESTS        += $(EMU)/test_cuda_kernels_emu $(EMU)/test_cuda_hamming_emu
.PRECIOUS: $(EMU)/kernels/%.cpp

$(EMU)/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -c $< -o $@

$(EMU)/kernels/%.cpp: kernels/%.cu checks/emu/cu2cpp.py
	@mkdir -p $(dir $@)
	$(PYTHON) checks/emu/cu2cpp.py $< $@

$(EMU)/kernels/%.cu.o: $(EMU)/kernels/%.cpp $(CONFIG_STAMP)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(EMU)/emu.o: checks/emu/emu.cpp $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -ffp-contract=off -c $< -o $@

$(EMU)/libdath_emu.a: $(EMU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(EMU)/%_emu: checks/%.c $(EMU)/libdath_emu.a
	$(CC) $(EMU_CFLAGS) -o $@ $< $(EMU)/libdath_emu.a $(EMU_LDLIBS)

# dath itself against the emulator: the CUDA backend's host side (streams, fences, graphs,
# the feed, the stepper's capture) runs end to end on the CPU (checks/test_emu_dath.sh).
TEST_TOOLS   += $(EMU)/dath_emu
$(EMU)/dath_emu: $(EMU)/host/main.o $(EMU)/libdath_emu.a
	$(CC) -o $@ $^ $(EMU_LDLIBS)

# ---- the sanitizer build and the fuzz targets (mk/fuzz.mk, checks/fuzz/) -----------------
include mk/fuzz.mk
