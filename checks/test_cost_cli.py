#!/usr/bin/env python3
"""checks/test_cost_cli.py — `dath cost` from the outside (host/cmd_cost.c):

  1. --json is one valid JSON object (strict: no NaN or Infinity) with the fields the
     issue names, for a few variants, sizes and precisions;
  2. its totals are the sums of its kernels: step_flops / step_bytes / step_floor_ms over
     the kernels of pass "step", the input and both encode passes likewise, the ideal
     floors over the ops, the epoch from its passes; every kernel's floor_us is
     max(flops / peak of its unit, bytes / bandwidth) with the peaks it prints, and its
     bound says which term is larger; phases are forward/backward/update (the step),
     input, encode;
  3. measured peaks (--peak-tflops, --bandwidth-gbs) replace the datasheet's;
  4. the text table prints every step kernel and the same totals;
  5. bad options are errors (exit 2) that name the option or value.
Exit 0 when everything passes, 1 otherwise."""
import json
import math
import subprocess
import sys

DATH = "./dath"
fails = 0
count = 0


def check(name, cond, detail=""):
    global fails, count
    count += 1
    if not cond:
        fails += 1
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "  " + detail))
    return cond


def close(a, b, rtol=1e-9):
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def run(*args):
    p = subprocess.run([DATH, "cost", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def no_constants(name):
    raise ValueError("non-finite number in the JSON: " + name)


def check_json(args):
    tag = " ".join(args)
    rc, out, err = run("--json", *args)
    if not check(f"[{tag}] exit 0", rc == 0, err.strip()):
        return None
    try:
        d = json.loads(out, parse_constant=no_constants)
    except ValueError as e:
        check(f"[{tag}] valid JSON", False, str(e))
        return None
    check(f"[{tag}] valid JSON, one object", isinstance(d, dict))
    need = ["step_flops", "step_bytes", "step_floor_ms", "epoch_floor_s", "ideal_step_floor_ms",
            "encode_b1_floor_ms", "encode_floor_ms", "kernels", "ops", "peaks"]
    check(f"[{tag}] has {', '.join(need[:7])}, kernels", all(k in d for k in need),
          str([k for k in need if k not in d]))
    pk = d["peaks"]
    kernels, ops = d["kernels"], d["ops"]
    fields_ok = all(all(f in k for f in ("name", "phase", "flops", "bytes", "floor_us", "pass", "layer"))
                    for k in kernels)
    check(f"[{tag}] every kernel has name, phase, flops, bytes, floor_us", fields_ok)

    def of(pass_name):
        return [k for k in kernels if k["pass"] == pass_name], [o for o in ops if o["pass"] == pass_name]

    step, step_ops = of("step")
    check(f"[{tag}] step has kernels", len(step) > 0 and len(step) == d["step_launches"])
    check(f"[{tag}] step_flops = Σ step kernels' flops", close(d["step_flops"], sum(k["flops"] for k in step)))
    check(f"[{tag}] step_gemm_flops = Σ of the GEMMs",
          close(d["step_gemm_flops"], sum(k["flops"] for k in step if k["unit"] == "gemm")))
    check(f"[{tag}] step_bytes = Σ step kernels' bytes", close(d["step_bytes"], sum(k["bytes"] for k in step)))
    check(f"[{tag}] step_floor_ms = Σ floor_us / 1000",
          close(d["step_floor_ms"], sum(k["floor_us"] for k in step) / 1e3))
    check(f"[{tag}] ideal_step_floor_ms = Σ op ideal floors",
          close(d["ideal_step_floor_ms"], sum(o["ideal_floor_us"] for o in step_ops) / 1e3))
    check(f"[{tag}] ideal ≤ floor", d["ideal_step_floor_ms"] <= d["step_floor_ms"] * (1 + 1e-12))
    sums = {}
    for name in ("input", "step_last", "input_last", "encode", "encode_b1"):
        ks, os_ = of(name)
        sums[name] = sum(k["floor_us"] for k in ks) / 1e3
        sums["ideal_" + name] = sum(o["ideal_floor_us"] for o in os_) / 1e3
    check(f"[{tag}] input_floor_ms = Σ", close(d["input_floor_ms"], sums["input"]))
    check(f"[{tag}] encode_floor_ms = Σ", close(d["encode_floor_ms"], sums["encode"]))
    check(f"[{tag}] encode_b1_floor_ms = Σ", close(d["encode_b1_floor_ms"], sums["encode_b1"]))
    check(f"[{tag}] ideal encode floors = Σ ops",
          close(d["ideal_encode_floor_ms"], sums["ideal_encode"]) and
          close(d["ideal_encode_b1_floor_ms"], sums["ideal_encode_b1"]))
    check(f"[{tag}] step_last / input_last floors = Σ", close(d["step_last_floor_ms"], sums["step_last"]) and
          close(d["input_last_floor_ms"], sums["input_last"]))
    B = d["batch"]
    full, last = d["epoch_full_batches"], d["epoch_last_batch"]
    check(f"[{tag}] the epoch's batches add up to {d['epoch_images']} images",
          full * B + last == d["epoch_images"] or (full * B + 1 == d["epoch_images"] and last == 0))
    epoch = (full * (d["step_floor_ms"] + d["input_floor_ms"]) + sums["step_last"] + sums["input_last"]) / 1e3
    check(f"[{tag}] epoch_floor_s = its steps and inputs", close(d["epoch_floor_s"], epoch))
    ideal_epoch = (full * (d["ideal_step_floor_ms"] + d["ideal_input_floor_ms"]) + sums["ideal_step_last"] +
                   sums["ideal_input_last"]) / 1e3
    check(f"[{tag}] ideal_epoch_floor_s = its steps and inputs", close(d["ideal_epoch_floor_s"], ideal_epoch))
    bad_floor = []
    for k in kernels:
        peak = pk["gemm_tflops"] if k["unit"] == "gemm" else pk["cuda_core_tflops"]
        c = k["flops"] / (peak * 1e12)
        m = k["bytes"] / (pk["bandwidth_gbs"] * 1e9)
        if not close(k["floor_us"], max(c, m) * 1e6, 1e-9) or k["bound"] != ("compute" if c > m else "memory") or \
                not close(k["bytes"], k["bytes_read"] + k["bytes_written"]):
            bad_floor.append(k)
    check(f"[{tag}] every floor_us = max(flops/peak, bytes/bandwidth), bound the larger",
          not bad_floor, str(bad_floor[:1]))
    phases_ok = all((k["phase"] in ("forward", "backward", "update")) == k["pass"].startswith("step") for k in kernels) \
        and all(k["phase"] == "encode" for k in kernels if k["pass"].startswith("encode")) \
        and all(k["phase"] == "input" for k in kernels if k["pass"].startswith("input"))
    check(f"[{tag}] phases: forward/backward/update, input, encode", phases_ok)
    check(f"[{tag}] one RMSProp, in the update phase",
          [k["phase"] for k in step if k["name"] == "rmsprop_step_kernel"] == ["update"])
    return d


d = check_json(["--variant", "dath", "--bits", "64", "--batch", "128", "--input-size", "224", "--precision", "tf32",
                "--gpu", "h200"])
if d:
    check("dath 224 B128: about 1.09 TFLOP a step", 1.08e12 < d["step_flops"] < 1.10e12, str(d["step_flops"]))
    check("the datasheet's H200 tf32 rate and bandwidth",
          d["peaks"]["gemm_tflops"] == 494.5 and d["peaks"]["bandwidth_gbs"] == 4800)
for args in (["--variant", "dath-1", "--bits", "16", "--classes", "21", "--batch", "37", "--input-size", "112",
              "--precision", "bf16", "--gpu", "a100"],
             ["--variant", "dath-n", "--batch", "2", "--input-size", "63", "--precision", "fp32", "--gpu", "gtx1080ti",
              "--single-label"],
             ["--variant", "dath-c", "--batch", "9", "--precision", "fp32", "--gpu", "rtx4090"]):
    check_json(args)

# measured peaks
m = check_json(["--variant", "dath-s", "--batch", "16", "--input-size", "96", "--precision", "tf32", "--gpu", "h100",
                "--peak-tflops", "300", "--bandwidth-gbs", "2500"])
if m:
    check("measured peaks are used", m["peaks"]["gemm_tflops"] == 300 and m["peaks"]["bandwidth_gbs"] == 2500 and
          "measured" in m["peaks"]["source"])

# the text table
rc, out, err = run("--variant", "dath-s", "--batch", "16", "--input-size", "96")
check("text: exit 0", rc == 0, err)
check("text: labelled a prediction", "a model's prediction, not a measurement" in out.splitlines()[0])
rc2, js, _ = run("--variant", "dath-s", "--batch", "16", "--input-size", "96", "--json")
dj = json.loads(js)
nstep = sum(1 for k in dj["kernels"] if k["pass"] == "step")
check("text: one row per step kernel", f"\n{nstep:5d}  update" in out, f"{nstep} kernels")
check("text: the step total", f"floor {dj['step_floor_ms']:.3f} ms" in out)
check("text: the epoch total", f"floor {dj['epoch_floor_s']:.3f} s" in out)
rc, out, err = run("--summary")
check("--summary: the families and totals only", rc == 0 and "by kernel family" in out and "cudaMemsetAsync" not in out)
rc, out, err = run("--list-gpus")
check("--list-gpus lists the table", rc == 0 and all(g in out for g in ("h200", "h100", "h100-pcie", "a100", "rtx4090",
                                                                        "l40s", "gtx1080ti")))
rc, out, err = run("--help")
check("--help", rc == 0 and "usage: dath cost" in out)

# bad options: exit 2, the option or value named
for args, pat in ((["--variant", "dath-x"], "--variant 'dath-x'"),
                  (["--bits", "0"], "bits 0"),
                  (["--bits", "sixteen"], "'sixteen' is not an integer"),
                  (["--classes", "0"], "classes 0"),
                  (["--batch", "0"], "--batch 0"),
                  (["--batch", "4096"], "--batch 4096"),
                  (["--input-size", "32"], "input size 32"),
                  (["--precision", "fp16"], "--precision 'fp16'"),
                  (["--gpu", "h300"], "--gpu 'h300'"),
                  (["--gpu", "gtx1080ti", "--precision", "tf32"], "no tf32 tensor cores"),
                  (["--gpu", "v100", "--precision", "bf16"], "no bf16 tensor cores"),
                  (["--peak-tflops", "-3"], "--peak-tflops"),
                  (["--bandwidth-gbs", "0"], "--bandwidth-gbs"),
                  (["--peak-tflops", "inf"], "--peak-tflops"),
                  (["--gpus"], "unknown option '--gpus'"),
                  (["--batch"], "--batch needs a value")):
    rc, out, err = run(*args)
    check(f"bad option {' '.join(args)}: exit 2, names it", rc == 2 and pat in err and not out,
          f"exit {rc}, stderr {err.strip()!r}")

print(f"{count} checks, {fails} failed")
sys.exit(1 if fails else 0)
