# dath — one Makefile. `make` builds ./dath, `make test` builds and runs every check,
# `make demo` trains and evaluates on the embedded demo data.
#   CUDA=0        CPU-only binary (default: CUDA when nvcc is found)
#   MPI=0         no MPI (default: MPI when mpicc is found; host/dist.c, host/comm_mpi.c)
#   ARCH="80 90"  narrow the CUDA architectures (default: chosen from nvcc's version)
#   DEBUG=1       -O0 -g, and a device synchronise after every CUDA launch
#   PYTHON=...    the Python that has torch/numpy (default: Debian's /usr/bin/python3)
#   DEPS_PREFIX=  where OpenBLAS, stb and libjpeg come from when not from the system
#                 (default: .carry/prefix, the device kit, when the system lacks one of them)
# `make` itself never installs anything: it names what is missing. `make deps` installs
# the build's Debian packages (as root, with apt-get); `make test` and `make demo` install
# what they and the build need first (mk/deps.sh), then build. `make device-kit` puts
# what a bare GPU machine lacks into .carry/prefix (mk/device-kit.sh).

CC      ?= cc
PYTHON  ?= /usr/bin/python3
BUILD   := build
OPT     := $(if $(DEBUG),-O0 -g -DDATH_DEBUG=1,-O3 -march=x86-64-v2)
DEPGEN  ?= -MMD -MP
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers $(OPT) -fopenmp $(DEPGEN)

# ---- what is there ------------------------------------------------------------
# OpenBLAS, stb_image and libjpeg: the system's (Debian's packages), or all three from a
# prefix laid out as mk/device-kit.sh lays it out: DEPS_PREFIX when given, else
# .carry/prefix when it exists and the system lacks one of them. A kit's libraries are
# linked by their sonames and found at run time through the binary's run path.
SYS_BLAS := $(wildcard /usr/include/cblas.h /usr/include/x86_64-linux-gnu/cblas.h)
SYS_STB  := $(wildcard /usr/include/stb/stb_image.h)
SYS_JPEG := $(wildcard /usr/include/jpeglib.h)
ifeq ($(origin DEPS_PREFIX),undefined)
  ifeq ($(and $(SYS_BLAS),$(SYS_STB),$(SYS_JPEG)),)
    DEPS_PREFIX := $(if $(wildcard .carry/prefix/MANIFEST),.carry/prefix)
  endif
endif
ifneq ($(DEPS_PREFIX),)
  KIT       := $(abspath $(DEPS_PREFIX))
  HAVE_BLAS := $(wildcard $(KIT)/include/cblas.h)
  HAVE_STB  := $(wildcard $(KIT)/include/stb/stb_image.h)
  HAVE_JPEG := $(wildcard $(KIT)/include/jpeglib.h)
  DEPS_FROM := kit $(DEPS_PREFIX)
  BASE_CFLAGS += -I$(KIT)/include
  DEPS_LIBS := -L$(KIT)/lib -Wl,--disable-new-dtags,-rpath,$(KIT)/lib -l:libopenblas.so.0 -l:libjpeg.so.62
else
  HAVE_BLAS := $(SYS_BLAS)
  HAVE_STB  := $(SYS_STB)
  HAVE_JPEG := $(SYS_JPEG)
  DEPS_FROM := system
  DEPS_LIBS := -lopenblas -ljpeg
endif
BASE_LDLIBS := $(DEPS_LIBS) -lm -lpthread -fopenmp
MISSING := $(if $(HAVE_BLAS),,libopenblas-dev) $(if $(HAVE_STB),,libstb-dev) $(if $(HAVE_JPEG),,libjpeg62-turbo-dev)

# CUDA: nvcc on the PATH (or NVCC=...); cuBLAS from the toolkit, else from the cuBLAS
# Python wheel (nvidia/cu13, as PyTorch installs it); NCCL from the toolkit or
# /usr/include, else from the nvidia-nccl Python wheel.
NVCC      ?= $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
ifeq ($(CUDA),0)
  HAVE_CUDA :=
else ifneq ($(NVCC),)
  HAVE_CUDA := 1
endif
WHEEL_PY := $(or $(shell command -v python3 2>/dev/null),$(PYTHON))
# wheel_dir SUBDIR FILE: the first nvidia/SUBDIR of the Python's packages holding FILE
wheel_dir = $(shell for d in $$($(WHEEL_PY) -c 'import nvidia; print(" ".join(nvidia.__path__))' 2>/dev/null); do \
              [ -f "$$d/$(1)/$(2)" ] && { echo "$$d/$(1)"; break; }; done)
ifneq ($(HAVE_CUDA),)
  ifneq ($(wildcard $(CUDA_HOME)/include/cublas_v2.h),)
    CUBLAS_FROM := toolkit
    CUBLAS_LIBS := -lcublasLt -lcublas
  else
    CUBLAS_DIR  := $(call wheel_dir,cu13,include/cublas_v2.h)
    CUBLAS_FROM := $(if $(CUBLAS_DIR),wheel $(CUBLAS_DIR),NOT FOUND)
    CUBLAS_INC  := $(if $(CUBLAS_DIR),-I$(CUBLAS_DIR)/include)
    CUBLAS_LIBS := $(if $(CUBLAS_DIR),-L$(CUBLAS_DIR)/lib -Wl,-rpath,$(CUBLAS_DIR)/lib -l:libcublasLt.so.13 -l:libcublas.so.13)
    MISSING     += $(if $(CUBLAS_DIR),,cuBLAS)
  endif
  NCCL_H := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
  ifneq ($(NCCL_H),)
    NCCL_FROM := $(NCCL_H)
    NCCL_LIBS := -lnccl
  else
    NCCL_DIR  := $(call wheel_dir,nccl,include/nccl.h)
    NCCL_H    := $(if $(NCCL_DIR),$(NCCL_DIR)/include/nccl.h)
    NCCL_FROM := $(if $(NCCL_DIR),wheel $(NCCL_DIR))
    NCCL_INC  := $(if $(NCCL_DIR),-I$(NCCL_DIR)/include)
    NCCL_LIBS := $(if $(NCCL_DIR),-L$(NCCL_DIR)/lib -Wl,-rpath,$(NCCL_DIR)/lib -l:libnccl.so.2)
  endif
  HAVE_NCCL := $(NCCL_H)
  NCCL_VER  := $(if $(NCCL_H),$(shell sed -n 's/^\#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' $(NCCL_H) | paste -sd.))
endif

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
              -DDATH_CUDA $(GENCODE) -Xcompiler -fopenmp,-Wall $(DEPGEN) $(CUBLAS_INC) \
              $(if $(KIT),-I$(KIT)/include)
  CUDA_CFLAGS := -DDATH_CUDA -I$(CUDA_HOME)/include $(CUBLAS_INC)
  CUDA_LIBS   := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 $(CUBLAS_LIBS) -lcudart -lstdc++
  ifneq ($(HAVE_NCCL),)
    CUDA_CFLAGS += -DDATH_NCCL $(NCCL_INC)
    NVFLAGS     += -DDATH_NCCL $(NCCL_INC)
    CUDA_LIBS   += $(NCCL_LIBS)
  endif
endif
# MPI (one process per GPU: host/dist.c, host/comm_mpi.c): mpicc on the PATH (or
# MPICC=...) names its headers and libraries (Open MPI's --showme:compile/--showme:link,
# MPICH's -compile_info/-link_info); dath is compiled by $(CC) with them, so CC=clang and
# the plain build stay as they are. Without mpicc or mpi.h, or with MPI=0, dath builds
# without MPI (one process, or the environment bootstrap with NCCL).
MPICC ?= $(shell command -v mpicc 2>/dev/null)
ifneq ($(MPI),0)
  ifneq ($(MPICC),)
    MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null || $(MPICC) -compile_info 2>/dev/null | cut -d' ' -f2-)
    MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null || $(MPICC) -link_info 2>/dev/null | cut -d' ' -f2-)
    MPI_H      := $(firstword $(wildcard $(patsubst -I%,%/mpi.h,$(filter -I%,$(MPI_CFLAGS))) /usr/include/mpi.h))
    MPI_VER    := $(shell $(MPICC) --showme:version 2>/dev/null | awk '{ print $$2, $$3, $$4 }')
  endif
  ifneq ($(MPI_H),)
    HAVE_MPI := 1
    MPI_CFLAGS := -DDATH_MPI $(filter-out -pthread,$(MPI_CFLAGS))
  else
    MPI_CFLAGS :=
    MPI_LIBS   :=
  endif
endif
MPI_INFO := $(if $(HAVE_MPI),$(or $(MPI_VER),yes) ($(MPICC)),$(if $(filter 0,$(MPI)),disabled by MPI=0,no))

CFLAGS += $(BASE_CFLAGS) $(CUDA_CFLAGS) $(MPI_CFLAGS)
LDLIBS += $(BASE_LDLIBS) $(CUDA_LIBS) $(MPI_LIBS)

# A build directory made with other settings (CUDA=0 then CUDA, DEBUG, ARCH, another
# prefix) is rebuilt: every object depends on a stamp that changes only when they do.
CONFIG_STR   := cuda=$(HAVE_CUDA) arch=$(ARCH) nccl=$(NCCL_FROM) cublas=$(CUBLAS_FROM) debug=$(DEBUG) deps=$(DEPS_FROM) mpi=$(HAVE_MPI)
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

.PHONY: test-build all deps info test test-run demo demo-run clean check-sm61 device-kit
all: info dath

# A build that lacks a library stops here, before compiling anything, and says what to do.
NO_DEPS_GOALS := deps clean device-kit check-sm61 test demo
ifneq ($(strip $(MISSING)),)
  ifneq ($(filter-out $(NO_DEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
    $(error dath build: missing $(strip $(MISSING)) (looked in the $(DEPS_FROM)). Install Debian's packages with `make deps` \
      (as root), or carry a device kit made by `make device-kit` on a machine with the registry \
      into .carry/ (or set DEPS_PREFIX))
  endif
endif

deps:
	@mk/deps.sh build

device-kit:
	@mk/device-kit.sh .carry

info:
	@echo "dath build: cc=$(CC)  openblas=$(if $(HAVE_BLAS),yes,NO)  stb_image=$(if $(HAVE_STB),yes,NO)  libjpeg=$(if $(HAVE_JPEG),yes,NO)  (from the $(DEPS_FROM))"
	@echo "dath build: nvcc=$(if $(HAVE_CUDA),$(NVCC) (CUDA $(NVCC_VER), sm_$(subst $() ,/,$(ARCH))),$(if $(filter 0,$(CUDA)),disabled by CUDA=0,not found: CPU-only))  cublas=$(if $(HAVE_CUDA),$(CUBLAS_FROM),no)  nccl=$(if $(HAVE_NCCL),$(NCCL_VER) ($(NCCL_FROM)),no)  mpi=$(MPI_INFO)"

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

# make test / make demo: first the Debian packages they need (installed as root, else named),
# then a fresh make, which detects what is there after the install.
test:
	@mk/deps.sh test
	@$(MAKE) --no-print-directory test-run

test-run: test-build
	@PYTHON=$(PYTHON) checks/run.sh $(TESTS)

# every check, bench and tool make test runs, built but not run
test-build: all
	@$(MAKE) --no-print-directory $(TESTS) $(BENCHES) $(TEST_TOOLS)

demo:
	@mk/deps.sh test
	@$(MAKE) --no-print-directory demo-run

demo-run: all
	@PYTHON=$(PYTHON) checks/demo.sh

clean:
	rm -rf $(BUILD) dath

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The GTX 1080 Ti build: every .cu file compiled for sm_61 with Debian's CUDA 11.8.
check-sm61:
	@mk/check-sm61.sh

# ---- the CUDA kernels on the CPU (emu; see emu/README.md) ------------------
# checks/test_*_cuda.c and checks/test_cuda_hamming.c, unchanged, built against a CPU
# emulation of CUDA: every kernels/*.cu rewritten by emu/cu2cpp.py into
# $(BUILD)/emu/kernels/*.cpp and compiled by $(CXX) with the emulator's cuda_runtime.h and
# cublas_v2.h, the whole library (host/backend_cuda.c too) compiled again with -DDATH_CUDA
# against them. No CUDA toolkit is needed. `make test` runs them as test_<family>_cuda_emu
# and test_cuda_hamming_emu: the real kernel code, on the CPU; not a GPU result. Kernels
# get FMA contraction as nvcc does (-mfma where the CPU has FMA); the emulator does not.
EMU          := $(BUILD)/emu
EMU_CFLAGS   := $(BASE_CFLAGS) -DDATH_CUDA -Iemu
EMU_CXXFLAGS := -std=c++17 $(OPT) -Wall -Wextra -Wno-unused-parameter -fno-strict-aliasing -ffp-contract=fast \
                $(if $(shell grep -qw fma /proc/cpuinfo 2>/dev/null && echo y),-mfma) -DDATH_CUDA -Iemu -Ikernels -MMD -MP
EMU_LDLIBS   := $(BASE_LDLIBS) -lstdc++
EMU_OBJ      := $(patsubst %.c,$(EMU)/%.o,$(filter-out host/main.c,$(ALL_C))) $(EMU)/emu.o \
                $(patsubst kernels/%.cu,$(EMU)/kernels/%.cu.o,$(wildcard kernels/*.cu))
# the CUDA kernel checks, a family a file (checks/test_<family>_cuda.c, checks/cuda_check.h)
CUDA_CHECKS  := $(wildcard checks/test_*_cuda.c)
TESTS        += $(patsubst checks/%.c,$(EMU)/%_emu,$(CUDA_CHECKS)) $(EMU)/test_cuda_hamming_emu
.PRECIOUS: $(EMU)/kernels/%.cpp

$(EMU)/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -c $< -o $@

$(EMU)/kernels/%.cpp: kernels/%.cu emu/cu2cpp.py
	@mkdir -p $(dir $@)
	$(PYTHON) emu/cu2cpp.py $< $@

$(EMU)/kernels/%.cu.o: $(EMU)/kernels/%.cpp $(CONFIG_STAMP)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(EMU)/emu.o: emu/emu.cpp $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -ffp-contract=off -fno-trapping-math -c $< -o $@

$(EMU)/libdath_emu.a: $(EMU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(EMU)/%_emu: checks/%.c $(EMU)/libdath_emu.a
	$(CC) $(EMU_CFLAGS) -o $@ $< $(EMU)/libdath_emu.a $(EMU_LDLIBS)

# dath itself against the emulator: the CUDA backend's host side (streams, fences, graphs,
# the feed, the stepper's capture) runs end to end on the CPU (checks/device --dry-run).
TEST_TOOLS   += $(EMU)/dath_emu
$(EMU)/dath_emu: $(EMU)/host/main.o $(EMU)/libdath_emu.a
	$(CC) -o $@ $^ $(EMU_LDLIBS)

# Benchmarks against the emulator: what checks/device --dry-run runs in place of the GPU's.
TEST_TOOLS   += $(EMU)/bench/bench_encode_emu $(EMU)/bench/bench_peak_emu
$(EMU)/bench/%_emu: bench/%.c $(EMU)/libdath_emu.a
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -o $@ $< $(EMU)/libdath_emu.a $(EMU_LDLIBS)

# The emulated cuBLAS's arithmetic, bit for bit, under each of its models
# (checks/test_cuda_precisions_emu.sh runs it).
TEST_TOOLS   += $(EMU)/test_emu_gemm
$(EMU)/test_emu_gemm: emu/test_gemm.c $(EMU)/emu.o
	$(CC) $(EMU_CFLAGS) -o $@ $< $(EMU)/emu.o -lstdc++ -lm -lpthread

# The emulator's warp matrix functions and asynchronous copies against their documented
# semantics and the emulated cuBLAS (emu/test_wmma.cu).
TESTS        += $(EMU)/test_emu_wmma
$(EMU)/emu/test_wmma.cpp: emu/test_wmma.cu emu/cu2cpp.py
	@mkdir -p $(dir $@)
	$(PYTHON) emu/cu2cpp.py $< $@
$(EMU)/test_emu_wmma: $(EMU)/emu/test_wmma.cpp $(EMU)/emu.o
	$(CXX) $(EMU_CXXFLAGS) -o $@ $< $(EMU)/emu.o -lm -lpthread

# ---- the sanitizer build and the fuzz targets (mk/fuzz.mk, checks/fuzz/) -----------------
include mk/fuzz.mk
