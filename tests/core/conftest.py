"""Engine core tests: pure, no cluster and no network."""

import os

# The Ramanujan check is one dense eigenvalue solve; multi-threaded BLAS only slows it
# down on a busy machine. Effective only if numpy is not imported yet.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
