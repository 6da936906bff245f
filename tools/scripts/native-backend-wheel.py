"""Install-time helper of native-backend.js: lays a TensorFlow wheel's C library into tfjs-node.

    python3 native-backend-wheel.py extract WHEEL PKG_DIR
        Copies tensorflow/libtensorflow_cc.so.2 and libtensorflow_framework.so.2 into
        PKG_DIR/deps/lib, and the headers the binding needs (the #include closure of
        PKG_DIR/binding/*, read from the wheel's tensorflow/include/) into PKG_DIR/deps/include.
        For a GPU wheel, the CUDA wheels' shared libraries are extracted by `extract-cuda`.
    python3 native-backend-wheel.py cuda-requirements WHEEL
        Prints the requirements of the wheel's "and-cuda" extra, one per line (the NVIDIA wheels
        that TensorFlow's GPU build loads at run time).
    python3 native-backend-wheel.py extract-cuda PKG_DIR WHEEL...
        Extracts nvidia/*/lib/*.so* of the given NVIDIA wheels into PKG_DIR/deps/nvidia/, where
        libtensorflow's RUNPATH ($ORIGIN/../nvidia/<name>/lib) looks for them.

Python runs only here, while `npm ci` builds the binding; nothing imports it at run time.
Only the standard library is used.
"""
import glob
import os
import re
import shutil
import sys
import zipfile

INCLUDE = 'tensorflow/include/'
LIBS = ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2')
QUOTED_INCLUDE = re.compile(r'#\s*include\s+"([^"]+)"')


def copy_member(z, name, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with z.open(name) as src, open(dst + '.part', 'wb') as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.replace(dst + '.part', dst)


def extract(wheel, pkg):
    z = zipfile.ZipFile(wheel)
    names = set(z.namelist())
    for lib in LIBS:
        if lib not in names:
            sys.exit('%s has no %s' % (os.path.basename(wheel), lib))
        copy_member(z, lib, os.path.join(pkg, 'deps', 'lib', os.path.basename(lib)))
    todo = []
    for f in glob.glob(os.path.join(pkg, 'binding', '*')):
        with open(f, encoding='utf-8', errors='replace') as fh:
            todo += QUOTED_INCLUDE.findall(fh.read())
    seen = set()
    while todo:
        h = todo.pop()
        if h in seen or INCLUDE + h not in names:
            continue  # the binding's own headers, or system headers
        seen.add(h)
        todo += QUOTED_INCLUDE.findall(z.read(INCLUDE + h).decode('utf-8', 'replace'))
    if 'tensorflow/c/c_api.h' not in seen:
        sys.exit('%s has no tensorflow/include/tensorflow/c/c_api.h' % os.path.basename(wheel))
    for h in sorted(seen):
        copy_member(z, INCLUDE + h, os.path.join(pkg, 'deps', 'include', h))
    print('%d headers, %d libraries' % (len(seen), len(LIBS)))


def cuda_requirements(wheel):
    z = zipfile.ZipFile(wheel)
    meta = [n for n in z.namelist() if n.endswith('.dist-info/METADATA')]
    if not meta:
        sys.exit('no METADATA in %s' % wheel)
    for line in z.read(meta[0]).decode('utf-8').splitlines():
        if not line.startswith('Requires-Dist:'):
            continue
        req, _, marker = line[len('Requires-Dist:'):].partition(';')
        if re.search(r'extra\s*==\s*["\']and-cuda["\']', marker):
            print(req.strip().replace(' ', ''))


def extract_cuda(pkg, wheels):
    count = 0
    for wheel in wheels:
        z = zipfile.ZipFile(wheel)
        for name in z.namelist():
            if re.match(r'nvidia/[^/]+/lib/[^/]+\.so(\.[0-9]+)*$', name):
                copy_member(z, name, os.path.join(pkg, 'deps', name))
                count += 1
    print('%d CUDA libraries' % count)


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else ''
    if cmd == 'extract' and len(sys.argv) == 4:
        extract(sys.argv[2], sys.argv[3])
    elif cmd == 'cuda-requirements' and len(sys.argv) == 3:
        cuda_requirements(sys.argv[2])
    elif cmd == 'extract-cuda' and len(sys.argv) >= 3:
        extract_cuda(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
