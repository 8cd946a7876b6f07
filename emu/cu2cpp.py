#!/usr/bin/env python3
"""emu/cu2cpp.py IN.cu OUT.cpp — turns a kernels/*.cu file into C++ that g++
compiles against the emulator's headers (emu/README.md). The kernel code itself
is not changed; only what g++ cannot read:

  kernel<<<grid, block[, smem[, stream]]>>>(args)
      -> EMU_LAUNCH(kernel, "kernel", MAX, grid, block[, smem[, stream]])(args)
         MAX: the kernel's __launch_bounds__ (0 when it has none; its first argument,
         which may be an expression of the launching template's parameters, e.g.
         conv_threads(TILE, MATH)), so that a launch with more threads fails as on a GPU;
  extern __shared__ T name[];   (inside a function)
      -> T *const name = (T *)::emu::dynamic_shared();
  extern "C" T name = value;    (a variable defined with C linkage)
      -> extern "C" { T name = value; }   (the same definition; g++ warns about the
         first form, nvcc's front end does not)

Every other CUDA word (__global__, __shared__, threadIdx, __syncthreads, ...) is a
macro or a function of emu/emu_device.h. Line numbers are kept, and the output
starts with #line 1 "IN.cu", so compiler messages and __FILE__/__LINE__ (the error
macros, the emulator's reports) name the original file and line. Fails (exit 1) on a
construct it does not handle rather than producing wrong code."""
import re
import sys


def strip_comments(s):
    """s with comments and string/char literals blanked (same length, newlines kept)."""
    out, i, n = [], 0, len(s)
    while i < n:
        if s.startswith('//', i):
            j = s.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif s.startswith('/*', i):
            j = s.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', s[i:j]))
            i = j
        elif s[i] in '"\'':
            q, j = s[i], i + 1
            while j < n and s[j] != q:
                j += 2 if s[j] == '\\' else 1
            j = min(j + 1, n)
            out.append(q + ' ' * (j - i - 2) + q if j - i >= 2 else s[i:j])
            i = j
        else:
            out.append(s[i])
            i += 1
    return ''.join(out)


def first_arg(args):
    """The first of comma-separated macro arguments, commas inside parentheses kept
    (__launch_bounds__(conv_threads(TILE, MATH), 2) -> 'conv_threads(TILE, MATH)')."""
    depth = 0
    for i, ch in enumerate(args):
        depth += ch == '('
        depth -= ch == ')'
        if ch == ',' and depth == 0:
            return args[:i].strip()
    return args.strip()


def fail(path, code, pos, what):
    line = code.count('\n', 0, pos) + 1
    sys.exit(f'{path}:{line}: cu2cpp: {what}')


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: cu2cpp.py IN.cu OUT.cpp')
    src_path, out_path = sys.argv[1], sys.argv[2]
    with open(src_path, encoding='utf-8') as f:
        src = f.read()
    code = strip_comments(src)   # where to look; edits are applied to src at the same offsets

    # __launch_bounds__(MAX[, MIN_BLOCKS]) NAME(  ->  bounds[NAME] = MAX
    bounds = {}
    for m in re.finditer(r'__launch_bounds__\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*(\w+)\s*\(', code):
        bounds[m.group(2)] = first_arg(src[m.start(1):m.end(1)])

    edits = []   # (start, end, replacement)

    # dynamic shared memory, only inside a function body
    for m in re.finditer(r'\bextern\s+__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s*)?)([A-Za-z_][\w\s]*?)\s+(\w+)\s*\[\s*\]\s*;', code):
        depth = code.count('{', 0, m.start()) - code.count('}', 0, m.start())
        if depth <= 0:
            fail(src_path, code, m.start(), 'extern __shared__ at file scope is not handled')
        typ, name = ' '.join(m.group(2).split()), m.group(3)
        edits.append((m.start(), m.end(), f'{typ} *const {name} = ({typ} *)::emu::dynamic_shared();'))
    if re.search(r'\bextern\s+__shared__', re.sub(r'\bextern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?[A-Za-z_][\w\s]*?\s+\w+\s*\[\s*\]\s*;', '', code)):
        fail(src_path, code, code.find('extern __shared__'), 'an extern __shared__ declaration of another form')

    # C-linkage variable definitions: the braced form, which g++ accepts without a warning
    for m in re.finditer(r'^extern\s+"[^"\n]*"\s+([^{};()"]*?\w\s*=[^;]*;)', code, re.M):
        if not re.match(r'extern\s+"C"', src[m.start():]):
            continue
        edits.append((m.start(), m.end(), 'extern "C" { ' + src[m.start(1):m.end(1)] + ' }'))

    # launches
    launches = 0
    for m in re.finditer(r'\b([A-Za-z_]\w*(?:\s*<[^<>;()]*>)?)\s*<<<(.*?)>>>(\s*)\(', code, re.S):
        name = m.group(1)
        base = re.sub(r'\s*<.*', '', name, flags=re.S)
        cfg = src[m.start(2):m.end(2)]
        if not cfg.strip():
            fail(src_path, code, m.start(), 'a launch without a configuration')
        kernel = f'({name})' if '<' in name else name
        edits.append((m.start(), m.end(),
                      f'EMU_LAUNCH({kernel}, "{base}", {bounds.get(base, "0")}, {cfg}){m.group(3)}('))
        launches += 1
    if '<<<' in re.sub(r'\b[A-Za-z_]\w*(?:\s*<[^<>;()]*>)?\s*<<<.*?>>>\s*\(', '', code, flags=re.S):
        fail(src_path, code, code.find('<<<'), 'a <<< >>> launch of a form cu2cpp does not handle')

    out = src
    for start, end, rep in sorted(edits, reverse=True):
        if src[start:end].count('\n') != rep.count('\n'):
            fail(src_path, code, start, 'internal: an edit would move line numbers')
        out = out[:start] + rep + out[end:]

    header = (f'// Generated from {src_path} by emu/cu2cpp.py ({launches} launches '
              f'rewritten) for the CPU emulator. Do not edit.\n'
              f'#line 1 "{src_path}"\n')
    with open(out_path, 'w', encoding='utf-8') as f:
        f.write(header + out)


if __name__ == '__main__':
    main()
