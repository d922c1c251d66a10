"""Says which kernels this process runs, and fails unless they are the ones asked for.

The second pass of .ci/run runs the test suite under other kernels than the machine's own
(``OPENBLAS_CORETYPE`` for numpy's and nettrim's OpenBLAS, ``ATEN_CPU_CAPABILITY`` for torch),
so that a test tied to one CPU's rounding fails in CI rather than on a user's machine.  An
environment variable that a library ignores would make that pass a copy of the first: this
checks that each setting took effect.
"""
import os
import sys

import nettrim  # noqa: F401  (loads the engine's OpenBLAS)
import numpy  # noqa: F401
from threadpoolctl import threadpool_info

wanted_core = os.environ.get("OPENBLAS_CORETYPE")
wanted_aten = os.environ.get("ATEN_CPU_CAPABILITY")
problems = []
openblas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
if len(openblas) < 2:
    problems.append(f"expected numpy's and nettrim's OpenBLAS, found {[i['filepath'] for i in openblas]}")
for lib in openblas:
    print(f"{lib['filepath']}: OpenBLAS {lib.get('version')}, kernels for {lib.get('architecture')}")
    if wanted_core and str(lib.get("architecture")).lower() != wanted_core.lower():
        problems.append(f"{lib['filepath']} runs {lib.get('architecture')} kernels, not OPENBLAS_CORETYPE={wanted_core}")
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}: ATen kernels for {capability}")
    if wanted_aten and capability.lower() != wanted_aten.lower():
        problems.append(f"torch runs {capability} kernels, not ATEN_CPU_CAPABILITY={wanted_aten}")
if problems:
    sys.exit("check_kernels: " + "; ".join(problems))
